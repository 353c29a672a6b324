/* The vectorizable exp and erf of kernels/vmath.h against libm in double (their reference twin):
 * exp relative error < 2e-7 over the whole clamped range, erf absolute error < 5e-7 everywhere,
 * and the edge values (±inf, clamps, 0) behave as documented. */
#include "kernels/vmath.h"
#include "test_util.h"

int main(void)
{
    double worst_exp = 0, worst_erf = 0;
    float at_exp = 0, at_erf = 0;
    for (double x = -87.0; x <= 88.0; x += 3.7e-4) {
        float xf = (float)x;
        double ref = exp((double)xf), e = fabs(gsq_vexpf(xf) - ref) / ref;
        if (e > worst_exp) worst_exp = e, at_exp = xf;
    }
    for (double x = -12.0; x <= 12.0; x += 1.3e-5) {
        float xf = (float)x;
        double e = fabs(gsq_verff(xf) - erf((double)xf));
        if (e > worst_erf) worst_erf = e, at_erf = xf;
    }
    printf("vexpf max relative error %.3g at %g; verff max absolute error %.3g at %g\n", worst_exp, at_exp,
           worst_erf, at_erf);
    CHECK(worst_exp < 2e-7, "exp relative error %.3g at %g", worst_exp, at_exp);
    CHECK(worst_erf < 5e-7, "erf absolute error %.3g at %g", worst_erf, at_erf);

    CHECK(gsq_vexpf(0.0f) == 1.0f, "exp(0) = %g", gsq_vexpf(0.0f));
    CHECK(gsq_vexpf(-INFINITY) > 0.0f && gsq_vexpf(-INFINITY) < 1e-37f, "exp(-inf) = %g", gsq_vexpf(-INFINITY));
    CHECK(isfinite(gsq_vexpf(INFINITY)) && gsq_vexpf(INFINITY) > 1e38f, "exp(+inf) = %g", gsq_vexpf(INFINITY));
    CHECK(isnan(gsq_vexpf(NAN)), "exp(NaN) = %g", gsq_vexpf(NAN)); /* and no undefined cast (UBSan) */
    CHECK(gsq_verff(0.0f) == 0.0f, "erf(0) = %g", gsq_verff(0.0f));
    CHECK(fabsf(gsq_verff(1e30f) - 1.0f) < 1e-7f && fabsf(gsq_verff(-INFINITY) + 1.0f) < 1e-7f, "erf tails");
    /* odd symmetry holds exactly: the polynomial is in x² */
    int odd = 1;
    for (float x = 0.001f; x < 5.0f; x *= 1.01f) odd &= gsq_verff(-x) == -gsq_verff(x);
    CHECK(odd, "erf is not exactly odd");
    return test_finish("test_vmath");
}
