from tir_harness.plugin.benchmark import dataset_test

test_asdiv = dataset_test("asdiv")
