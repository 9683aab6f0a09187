from tir_harness.plugin.benchmark import dataset_test

test_gsm8k = dataset_test("gsm8k")
