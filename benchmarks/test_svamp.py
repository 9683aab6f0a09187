from tir_harness.plugin.benchmark import dataset_test

test_svamp = dataset_test("svamp")
