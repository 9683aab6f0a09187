from tir_harness.plugin.benchmark import dataset_test

test_olympiadbench = dataset_test("olympiadbench")
