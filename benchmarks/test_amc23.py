from tir_harness.plugin.benchmark import dataset_test

test_amc23 = dataset_test("amc23")
