from tir_harness.plugin.benchmark import dataset_test

test_gaokao2023en = dataset_test("gaokao2023en")
