"""Float64 reference maths shared by the tests: what an exact model outputs for each prediction type, written from
the papers' formulas and not read from the code under test."""


def exact_model_output(prediction_type: str, x0, x_t, alpha_bar: float, alpha_bar_prev: float):
    """
    The output of a perfect model at x_t whose clean sample is x0 (numpy arrays or torch tensors, in float64).

    epsilon from q(x_t | x0) = N(sqrt(alpha_bar) x0, (1 - alpha_bar) I); v = sqrt(alpha_bar) epsilon -
    sqrt(1 - alpha_bar) x0 (Salimans & Ho 2022); the posterior mean of q(x_{t-1} | x_t, x0) (Ho et al. 2020, eq. 7),
    with beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}; "sample" is x0 itself.
    """
    epsilon = (x_t - alpha_bar**0.5 * x0) / (1 - alpha_bar) ** 0.5
    if prediction_type == "epsilon":
        return epsilon
    if prediction_type == "sample":
        return x0
    if prediction_type == "v_prediction":
        return alpha_bar**0.5 * epsilon - (1 - alpha_bar) ** 0.5 * x0
    if prediction_type == "mean":
        beta = 1 - alpha_bar / alpha_bar_prev
        coef_x0 = alpha_bar_prev**0.5 * beta / (1 - alpha_bar)
        coef_x_t = (1 - beta) ** 0.5 * (1 - alpha_bar_prev) / (1 - alpha_bar)
        return coef_x0 * x0 + coef_x_t * x_t
    raise ValueError(f"Unknown prediction type {prediction_type!r}.")
