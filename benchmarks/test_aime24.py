from tir_harness.plugin.benchmark import dataset_test

test_aime24 = dataset_test("aime24")
