"""scikit-learn's common estimator checks on fastnn.MLPClassifier and fastnn.MLPRegressor, with their defaults,
and on the Poisson regressor (whose positive_only target tag makes the checks draw targets >= 0). The Poisson one
gets max_iter=1000: check_regressors_train asks for R^2 > 0.5 on a linear problem, which its exp output does not
reach in the default 200 epochs (scikit-learn's own MLPRegressor(loss="poisson") fails that check there too)."""
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastnn


@parametrize_with_checks([fastnn.MLPClassifier(), fastnn.MLPRegressor(), fastnn.MLPRegressor(loss="poisson", max_iter=1000)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
