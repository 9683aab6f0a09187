from tir_harness.plugin.benchmark import dataset_test

test_mawps = dataset_test("mawps")
