from tir_harness.plugin.benchmark import dataset_test

test_college_math = dataset_test("college_math")
