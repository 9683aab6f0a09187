from tir_harness.plugin.benchmark import dataset_test

test_minerva_math = dataset_test("minerva_math")
