"""Tables of your own: load_csv, load_npz and split_train_test, on scikit-learn's bundled datasets written
to files here (never a download), and every kind of bad file."""
import csv

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from fastnn.datasets import DataFileError, load_csv, load_npz, split_train_test


def write_csv(path, header, rows, delimiter=","):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def cancer_csv(tmp_path_factory):
    """Breast cancer (569 x 30) with text labels in the middle of the table, as its diagnosis column."""
    data = load_breast_cancer()
    path = tmp_path_factory.mktemp("data") / "breast_cancer.csv"
    header = list(data.feature_names[:10]) + ["diagnosis"] + list(data.feature_names[10:])
    rows = [list(x[:10]) + [data.target_names[t]] + list(x[10:]) for x, t in zip(data.data.tolist(), data.target)]
    return write_csv(path, header, rows), data


@pytest.fixture(scope="module")
def diabetes_csv(tmp_path_factory):
    data = load_diabetes()
    path = tmp_path_factory.mktemp("data") / "diabetes.csv"
    rows = [x + [t] for x, t in zip(data.data.tolist(), data.target.tolist())]
    return write_csv(path, list(data.feature_names) + ["progression"], rows), data


def test_breast_cancer_text_labels_by_name(cancer_csv):
    path, data = cancer_csv
    table = load_csv(path, target="diagnosis")
    assert table.X.dtype == np.float32 and table.X.flags.c_contiguous and table.X.shape == (569, 30)
    np.testing.assert_array_equal(table.X, data.data.astype(np.float32))
    assert list(table.classes) == ["benign", "malignant"]  # sorted; sklearn's 0 is malignant
    np.testing.assert_array_equal(table.classes[table.y], data.target_names[data.target])
    assert table.y.dtype == np.int64
    assert table.feature_names == tuple(data.feature_names) and table.target_name == "diagnosis"
    X, y = table  # unpacks as (X, y)
    assert X is table.X and y is table.y
    assert repr(table) == f"Dataset({str(path)!r}: 569 rows, 30 features, target 'diagnosis', 2 classes)"


def test_target_by_index_and_negative_index(cancer_csv):
    path, data = cancer_csv
    by_name = load_csv(path, target="diagnosis", dtype="float64")
    for target in (10, -21):
        table = load_csv(path, target=target, dtype="float64")
        np.testing.assert_array_equal(table.X, by_name.X)
        np.testing.assert_array_equal(table.y, by_name.y)
    np.testing.assert_array_equal(by_name.X, data.data)  # float64 keeps every digit written
    with pytest.raises(DataFileError, match=r"no column named 'label'; the 31 columns are 'mean radius', 'mean texture', "
                       r"'mean perimeter', 'mean area', 'mean smoothness', \.\.\., 'worst compactness', 'worst concavity', "
                       r"'worst concave points', 'worst symmetry', 'worst fractal dimension'$"):
        load_csv(path, target="label")


def test_diabetes_regression(diabetes_csv):
    path, data = diabetes_csv
    table = load_csv(path, target="progression", task="regression", dtype="float64")
    np.testing.assert_array_equal(table.X, data.data)
    np.testing.assert_array_equal(table.y, data.target)
    assert table.classes is None and table.y.dtype == np.float64
    assert "regression" in repr(table)
    table = load_csv(path, task="regression")  # the last column by default
    assert table.y.dtype == np.float32 and table.target_name == "progression"


def test_numeric_class_labels_keep_their_values(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["a", "b", "label"], [[1, 2, 7], [3, 4, 3], [5, 6, 7], [7, 8, 11]])
    table = load_csv(path)
    assert table.classes.tolist() == [3, 7, 11] and table.classes.dtype == np.int64
    assert table.y.tolist() == [1, 0, 1, 2]


def test_delimiter_quoting_spaces_blank_lines_and_no_header(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text('x1\tx 2\t"class"\n 1.5\t-2e3\t"a b"\n\n3\t 4 \tc\n')
    table = load_csv(path, delimiter="\t")
    assert table.feature_names == ("x1", "x 2") and table.X.tolist() == [[1.5, -2000.0], [3.0, 4.0]]
    assert table.classes.tolist() == ["a b", "c"]
    path = write_csv(tmp_path / "n.csv", None, [[1, 2, 0], [3, 4, 1]])
    table = load_csv(path, header=False, target=0)
    assert table.feature_names == ("column 2", "column 3") and table.X.tolist() == [[2, 0], [4, 1]]
    assert table.classes.tolist() == [1, 3]


BAD_FILES = {
    # name: (lines of the file, load_csv arguments, the message expected)
    "non-numeric feature": (["a,b,y", "1,2,0", "3,x,1"], {}, r", line 3, column 2 \('b'\): 'x' is not a number"),
    "missing value": (["a,b,y", "1,,0", "3,4,1"], {}, r", line 2, column 2 \('b'\): missing value ''"),
    "NA value": (["a,b,y", "1,2,0", "NA,4,1"], {}, r", line 3, column 1 \('a'\): missing value 'NA'"),
    "NaN value": (["a,b,y", "1,2,0", "3,nan,1"], {}, r", line 3, column 2 \('b'\): missing value 'nan'"),
    "missing target": (["a,b,y", "1,2,", "3,4,1"], {}, r", line 2, column 3 \('y'\): missing value ''"),
    "infinite value": (["a,b,y", "1,2,0", "3,inf,1"], {}, r", line 3, column 2 \('b'\): 'inf' is not a finite"),
    "too large for float32": (["a,b,y", "1,1e39,0", "3,4,1"], {}, r", line 2, column 2 \('b'\): '1e39' is not a finite float32"),
    "ragged row": (["a,b,y", "1,2,0", "3,4", "5,6,1"], {}, r", line 3: 2 fields, expected 3 as on line 1 \(the header\)"),
    "long row": (["a,b,y", "1,2,0,9"], {}, r", line 2: 4 fields, expected 3"),
    "unknown target": (["a,b,y", "1,2,0"], {"target": "label"}, r": no column named 'label'; the 3 columns are 'a', 'b', 'y'"),
    "target index out of range": (["a,b,y", "1,2,0"], {"target": 3}, r": no column 3 \(target index\); the file has 3 columns"),
    "one class": (["a,b,y", "1,2,cat", "3,4,cat"], {},
                  r", column 3 \('y', the target\): every one of the 2 rows has the class 'cat'; classification needs at least two"),
    "text regression target": (["a,b,y", "1,2,0.5", "3,4,big"], {"task": "regression"},
                               r", line 3, column 3 \('y'\): 'big' is not a number \(a regression target must be numeric\)"),
    "empty file": ([], {}, r": the file is empty"),
    "header only": (["a,b,y"], {}, r": a header but no data rows"),
    "one column": (["y", "1"], {}, r": 1 column; expected feature columns and a target column"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_csv_files_name_file_line_and_column(tmp_path, case):
    lines, kwargs, message = BAD_FILES[case]
    path = tmp_path / "bad.csv"
    path.write_text("".join(line + "\n" for line in lines))
    with pytest.raises(DataFileError, match="^" + str(path).replace(".", r"\.") + message):
        load_csv(path, **kwargs)


def test_bad_arguments(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["a", "y"], [[1, 0], [2, 1]])
    with pytest.raises(ValueError, match="task must be 'classification' or 'regression', got 'clustering'"):
        load_csv(path, task="clustering")
    with pytest.raises(ValueError, match="delimiter must be a single character, got ';;'"):
        load_csv(path, delimiter=";;")
    with pytest.raises(ValueError, match="target='y' names a column, but header=False"):
        load_csv(path, target="y", header=False)
    with pytest.raises(TypeError, match="target must be a column name .* or index .*, got float"):
        load_csv(path, target=1.0)
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        load_csv(path, dtype="int32")
    with pytest.raises(FileNotFoundError):
        load_csv(tmp_path / "missing.csv")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00a,b\n")
    with pytest.raises(DataFileError, match="binary.csv: not a UTF-8 text file"):
        load_csv(tmp_path / "binary.csv")


def test_npz_classification_and_regression(tmp_path):
    data = load_diabetes()
    np.savez(tmp_path / "d.npz", X=data.data, y=data.target)
    table = load_npz(tmp_path / "d.npz", task="regression", dtype="float64")
    np.testing.assert_array_equal(table.X, data.data)
    np.testing.assert_array_equal(table.y, data.target)
    assert table.target_name == "y" and table.feature_names[0] == "column 1"
    cancer = load_breast_cancer()
    np.savez(tmp_path / "c.npz", X=cancer.data, y=cancer.target_names[cancer.target])  # text labels, no pickle
    table = load_npz(tmp_path / "c.npz")
    assert table.classes.tolist() == ["benign", "malignant"] and table.X.dtype == np.float32
    np.testing.assert_array_equal(table.classes[table.y], cancer.target_names[cancer.target])
    Y = np.column_stack([data.target, data.target / 2])
    np.savez(tmp_path / "m.npz", X=data.data, y=Y)
    assert load_npz(tmp_path / "m.npz", task="regression").y.shape == (442, 2)


def test_bad_npz_files(tmp_path):
    X = np.arange(12.0).reshape(4, 3)
    cases = {
        "no_y": ({"X": X}, r": no array 'y'; the archive holds 'X', expected 'X' \(features\) and 'y' \(targets\)"),
        "nan": ({"X": np.where(X == 7, np.nan, X), "y": [0, 1, 0, 1]}, r": array 'X', row 2, column 1: missing value \(NaN\)"),
        "inf_y": ({"X": X, "y": [0.5, np.inf, 1, 2]}, r": array 'y', row 1: inf is not a finite float32 number"),
        "lengths": ({"X": X, "y": [0, 1, 0]}, r": y must have shape \(4,\) to match X \(4, 3\), got \(3,\)"),
        "one_d_X": ({"X": X[0], "y": [0]}, r": X must be a 2-D array of numbers \(n, k\), got float64 of shape \(3,\)"),
        "one_class": ({"X": X, "y": [2, 2, 2, 2]}, r": array 'y': every one of the 4 rows has the class 2"),
        "objects": ({"X": X, "y": np.array([0, "a", None, 1], dtype=object)}, r": cannot read its arrays"),
        "text_regression": ({"X": X, "y": ["a", "b", "c", "d"]}, r": y must hold numbers, got dtype <U1"),
    }
    for name, (arrays, message) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        task = "regression" if name in ("inf_y", "text_regression") else "classification"
        with pytest.raises(DataFileError, match="^" + str(path).replace(".", r"\.") + message):
            load_npz(path, task=task)
    (tmp_path / "text.npz").write_text("X,y\n1,2\n")
    with pytest.raises(DataFileError, match=r"text\.npz: not a readable \.npz archive"):
        load_npz(tmp_path / "text.npz")


def test_split_train_test():
    X, y = np.arange(20).reshape(10, 2), np.arange(10)
    (X_train, y_train), (X_test, y_test) = split_train_test(X, y, test_size=0.25, seed=3)
    assert len(y_test) == 3 and len(y_train) == 7  # ceil(0.25 * 10), as scikit-learn rounds
    assert sorted(np.concatenate([y_train, y_test]).tolist()) == list(range(10))
    assert list(y_train) == sorted(y_train) and list(y_test) == sorted(y_test)  # file order kept
    np.testing.assert_array_equal(X_train[:, 0], 2 * y_train)  # rows stay paired
    again = split_train_test(X, y, test_size=0.25, seed=3)
    np.testing.assert_array_equal(again[1][1], y_test)
    assert not np.array_equal(split_train_test(X, y, test_size=0.25, seed=4)[1][1], y_test)
    with pytest.raises(ValueError, match=r"test_size must be a fraction in \(0, 1\), got 1"):
        split_train_test(X, y, test_size=1)
    with pytest.raises(ValueError, match="leaves no rows to train on"):
        split_train_test(X[:1], y[:1], test_size=0.5)
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[10, 9\]"):
        split_train_test(X, y[:9])
