from tir_harness.plugin.benchmark import dataset_test

test_math = dataset_test("math")
