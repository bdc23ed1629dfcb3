"""export: the ONNX check runs on finite ECG windows only, and refuses an input with none."""

from ecg2abp.cli import main


def test_export_refuses_a_check_input_without_a_finite_window(model_file, tmp_path, capsys):
    check = tmp_path / "nan.csv"
    check.write_text("ecg\n" + "nan\n" * 500)
    onnx_file = tmp_path / "m.onnx"
    args = ["export", str(model_file), "--onnx", str(onnx_file), "--check-input", str(check)]
    assert main([*args, "--fs", "125"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "ecg2abp: error: export: the check input holds no full window of finite ECG"
    assert not onnx_file.exists()
