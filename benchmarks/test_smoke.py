from tir_harness.plugin.benchmark import dataset_test

test_smoke = dataset_test("smoke")
