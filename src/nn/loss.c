/* Cross-entropy with label smoothing (torch semantics), mean over the batch; the argmax of a row of logits. */
#include "gpusq/nn.h"

#include <math.h>
#include <stddef.h>

/* logits (B, K), targets (B) → probs (B, K); returns mean loss */
float gsq_cross_entropy_forward(float *probs, const float *logits, const int *targets, int B,
                                int K, float smoothing)
{
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        float *p = probs + (size_t)b * K;
        float maxv = z[0];
        for (int k = 1; k < K; k++) maxv = z[k] > maxv ? z[k] : maxv;
        double sum = 0.0;
        for (int k = 0; k < K; k++) sum += exp((double)z[k] - maxv);
        double logsum = log(sum) + maxv;
        double sum_logp = 0.0;
        for (int k = 0; k < K; k++) {
            double logp = (double)z[k] - logsum;
            p[k] = (float)exp(logp);
            sum_logp += logp;
        }
        double nll = logsum - (double)z[targets[b]];
        total += (1.0 - smoothing) * nll - smoothing * sum_logp / K;
    }
    return (float)(total / B);
}

/* dlogits (B, K) += dloss · (probs - q) / B, q = (1 - ε)·onehot + ε / K */
void gsq_cross_entropy_backward(float *dlogits, const float *probs, const int *targets, int B,
                                int K, float smoothing, float dloss)
{
    if (!dlogits) return;
    float scale = dloss / (float)B;
    for (int b = 0; b < B; b++) {
        const float *p = probs + (size_t)b * K;
        float *d = dlogits + (size_t)b * K;
        for (int k = 0; k < K; k++) {
            float q = smoothing / (float)K + (k == targets[b] ? 1.0f - smoothing : 0.0f);
            d[k] += scale * (p[k] - q);
        }
    }
}

int gsq_argmax(const float *z, int K)
{
    int best = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > z[best]) best = k;
    return best;
}
