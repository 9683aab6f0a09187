from tir_harness.plugin.benchmark import dataset_test

test_gsm_hard = dataset_test("gsm_hard")
