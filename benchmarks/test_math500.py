from tir_harness.plugin.benchmark import dataset_test

test_math500 = dataset_test("math500")
