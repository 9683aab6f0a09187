from tir_harness.plugin.benchmark import dataset_test

test_aime25 = dataset_test("aime25")
