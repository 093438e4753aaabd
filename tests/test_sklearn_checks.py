"""scikit-learn's common estimator checks on fastnn.MLPClassifier and fastnn.MLPRegressor, with their defaults."""
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastnn


@parametrize_with_checks([fastnn.MLPClassifier(), fastnn.MLPRegressor()])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
