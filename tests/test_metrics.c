/*
 * test_metrics.c — metrics against hand-computed cases (worked values in the
 * comments) and the rank AUC against a brute-force pair count.
 */
#include "tests/testutil.h"
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EPS 1e-12

/* cmocka's assert_float_equal rounds to float; metrics are double. */
#define assert_near(a, b, eps) assert_true(fabs((double)(a) - (double)(b)) <= (eps))

/* one-hot-ish logits: 2 at the predicted class, 0 elsewhere */
static float *logits_for(const int *pred, int n, int K)
{
    float *x = calloc((size_t)n * K, sizeof *x);
    for (int i = 0; i < n; i++) x[i * K + pred[i]] = 2.0f;
    return x;
}

static void test_cls_three_class_confusion_prf(void **st)
{
    (void)st;
    /* true 0 0 0 1 1 2 2 2 2, pred 0 0 1 1 1 2 2 0 0
     * confusion [[2,1,0],[0,2,0],[2,0,2]]; TP 2,2,2; predicted 4,3,2; true 3,2,4
     * precision 1/2, 2/3, 1   recall 2/3, 1, 1/2   f1 4/7, 4/5, 2/3 */
    const int32_t y[9] = {0, 0, 0, 1, 1, 2, 2, 2, 2};
    const int pred[9] = {0, 0, 1, 1, 1, 2, 2, 0, 0};
    float *x = logits_for(pred, 9, 3);
    mtc_cls_metrics m;
    mtc_err e = {0};
    assert_int_equal(mtc_metrics_cls(x, y, 9, 3, &m, &e), 0);
    const int64_t conf[9] = {2, 1, 0, 0, 2, 0, 2, 0, 2};
    assert_memory_equal(m.confusion, conf, sizeof conf);
    assert_near(m.accuracy, 6.0 / 9, EPS);
    assert_near(m.precision, (0.5 + 2.0 / 3 + 1) / 3, EPS);
    assert_near(m.recall, (2.0 / 3 + 1 + 0.5) / 3, EPS);
    assert_near(m.f1, (4.0 / 7 + 4.0 / 5 + 2.0 / 3) / 3, EPS);
    /* loss is the mean softmax CE */
    double ce = mtc_loss_softmax_ce(NULL, x, y, 9, 3, 0.0f, 1.0f);
    assert_near(m.loss, ce, 1e-6);
    assert_true(m.auc > 0.5 && m.auc <= 1.0);
    mtc_cls_metrics_free(&m);
    free(x);
}

static void test_cls_macro_counts_predicted_only_classes_with_precision_0(void **st)
{
    (void)st;
    /* K = 5; true 0 1 2 2, pred 0 1 2 3. Class 3 is predicted but absent from
     * the labels: precision 0, recall 0, counted. Class 4 never appears:
     * excluded. P = (1+1+1+0)/4, R = (1+1+1/2+0)/4, F1 = (1+1+2/3+0)/4 */
    const int32_t y[4] = {0, 1, 2, 2};
    const int pred[4] = {0, 1, 2, 3};
    float *x = logits_for(pred, 4, 5);
    mtc_cls_metrics m;
    mtc_err e = {0};
    assert_int_equal(mtc_metrics_cls(x, y, 4, 5, &m, &e), 0);
    assert_near(m.precision, 0.75, EPS);
    assert_near(m.recall, 0.625, EPS);
    assert_near(m.f1, (2 + 2.0 / 3) / 4, EPS);
    assert_int_equal(m.confusion[2 * 5 + 3], 1);
    mtc_cls_metrics_free(&m);
    free(x);
    /* a label outside [0,K) is bad input */
    const int32_t bad[1] = {5};
    float z[5] = {0};
    assert_int_equal(mtc_metrics_cls(z, bad, 1, 5, &m, &e), MTC_EINPUT);
    mtc_cls_metrics_free(&m);
}

static void test_auc_with_ties_known_values(void **st)
{
    (void)st;
    /* sklearn's example: 0.75 */
    const float s1[4] = {0.1f, 0.4f, 0.35f, 0.8f};
    const uint8_t p1[4] = {0, 0, 1, 1};
    assert_near(mtc_auc(s1, p1, 4), 0.75, EPS);
    /* ties: positives at 2, 2; negatives at 1, 2 → pairs 1 + ½ + 1 + ½ = 3 of 4 */
    const float s2[4] = {1, 2, 2, 2};
    const uint8_t p2[4] = {0, 1, 0, 1};
    assert_near(mtc_auc(s2, p2, 4), 0.75, EPS);
    /* all tied: 0.5; a single class: 0.5 by definition */
    const float s3[3] = {1, 1, 1};
    const uint8_t p3[3] = {1, 0, 1}, p4[3] = {1, 1, 1};
    assert_near(mtc_auc(s3, p3, 3), 0.5, EPS);
    assert_near(mtc_auc(s3, p4, 3), 0.5, EPS);
}

static void test_auc_equals_pair_count_on_random_ties(void **st)
{
    (void)st;
    enum { N = 300 };
    mtc_rng r;
    mtc_rng_seed(&r, 4);
    float s[N];
    uint8_t p[N];
    for (int i = 0; i < N; i++) {
        p[i] = mtc_rng_below(&r, 3) == 0;
        s[i] = (float)mtc_rng_below(&r, 12) + (p[i] ? 2.0f : 0.0f); /* many ties */
    }
    double hit = 0, pairs = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            if (p[i] && !p[j]) {
                pairs++;
                hit += s[i] > s[j] ? 1.0 : (s[i] == s[j] ? 0.5 : 0.0);
            }
    assert_near(mtc_auc(s, p, N), hit / pairs, 1e-12);
}

static void test_cls_auc_separable_and_binary_case(void **st)
{
    (void)st;
    const int32_t y[6] = {0, 1, 2, 0, 1, 2};
    const float x[18] = {3, 0, 0, 0, 3, 0, 0, 0, 3, 2, 1, 0, 0, 2, 1, 1, 0, 2};
    mtc_cls_metrics m;
    mtc_err e = {0};
    assert_int_equal(mtc_metrics_cls(x, y, 6, 3, &m, &e), 0);
    assert_near(m.auc, 1.0, EPS);
    assert_near(m.accuracy, 1.0, EPS);
    mtc_cls_metrics_free(&m);
    /* K == 2: AUC of class 1 only; logit gaps 1, −1, 0.5, 2 for labels 1 0 0 1 */
    const int32_t yb[4] = {1, 0, 0, 1};
    const float xb[8] = {0, 1, 1, 0, 0, 0.5f, 0, 2};
    assert_int_equal(mtc_metrics_cls(xb, yb, 4, 2, &m, &e), 0);
    assert_near(m.auc, 1.0, EPS); /* positives 1, 2 above negatives −1, 0.5 */
    mtc_cls_metrics_free(&m);
}

static void test_bin_metrics_hand_case(void **st)
{
    (void)st;
    /* output 0: logits 2 −1 0.5 −3, targets 1 0 0 0 → preds 1 0 1 0:
     *   3/4 right, TP 1 FP 1 FN 0 → F1 2/3, AUC 1
     * output 1: logits 1 1 −1 −1, targets 1 0 1 0 → preds 1 1 0 0:
     *   2/4 right, TP 1 FP 1 FN 1 → F1 1/2, AUC (½ + 1 + 0 + ½)/4 = 1/2 */
    const float x[8] = {2, 1, -1, 1, 0.5f, -1, -3, -1};
    const float t[8] = {1, 1, 0, 0, 0, 1, 0, 0};
    mtc_bin_metrics m;
    mtc_err e = {0};
    assert_int_equal(mtc_metrics_bin(x, t, 4, 2, &m, &e), 0);
    assert_near(m.accuracy, 5.0 / 8, EPS);
    assert_near(m.f1, (2.0 / 3 + 0.5) / 2, EPS);
    assert_near(m.auc, 0.75, EPS);
    assert_near(m.loss, mtc_loss_bce(NULL, x, t, 4, 2, 1.0f), 1e-9);
}

static void test_reg_metrics_r2_known(void **st)
{
    (void)st;
    /* output 0: targets 1 2 3 4, pred 1 2 3 5 → MAE 1/4, MSE 1/4,
     *   SS_res 1, SS_tot 5 → R² 0.8
     * output 1: targets all 7 (SS_tot 0 → R² 0), pred 7 7 7 8 */
    const float t[8] = {1, 7, 2, 7, 3, 7, 4, 7};
    const float p[8] = {1, 7, 2, 7, 3, 7, 5, 8};
    mtc_reg_metrics m;
    mtc_metrics_reg(p, t, 4, 1 * 2, &m);
    assert_near(m.mae, 0.25, EPS);
    assert_near(m.mse, 0.25, EPS);
    assert_near(m.r2, 0.4, EPS);
    const float t1[4] = {1, 2, 3, 4}, p1[4] = {1, 2, 3, 5};
    mtc_metrics_reg(p1, t1, 4, 1, &m);
    assert_near(m.r2, 0.8, EPS);
}

/* Missing labels: a task's metrics are over the samples labelled for it,
 * counted by hand on a crafted set (6 samples; c labelled on rows 0, 1, 3,
 * 5 with 3 of 4 right; r on rows 0, 2, 4, 5 with |errors| .5, 1, 0, 1). */
static void test_metrics_count_labelled_samples_only(void **st)
{
    (void)st;
    mtc_model m;
    mtc_err e = {0};
    assert_int_equal(tu_build_model("[input] shape=2\n[dense] units=2\n[task c] kind=cls classes=3\n"
                                    "[task r] kind=reg outputs=1\n", &m, 1, &e), 0);
    mtc_dataset d;
    memset(&d, 0, sizeof d);
    snprintf(d.name, sizeof d.name, "crafted");
    d.n = 6, d.c = d.h = 1, d.w = 2, d.ntasks = 2;
    int32_t lab[6] = {0, 1, MTC_LABEL_MISSING, 2, MTC_LABEL_MISSING, 1};
    float tg[6] = {1, NAN, 3, NAN, 5, 6};
    d.tasks[0] = (mtc_data_task){.name = "c", .kind = MTC_TASK_CLS, .dim = 3, .labels = lab};
    d.tasks[1] = (mtc_data_task){.name = "r", .kind = MTC_TASK_REG, .dim = 1, .targets = tg};
    float logits[18] = {5, 0, 0, 0, 0, 5, 0, 5, 0, 0, 0, 5, 5, 0, 0, 0, 5, 0}; /* argmax 0 2 1 2 0 1 */
    float pred[6] = {1.5f, 0, 2, 0, 5, 7};
    mtc_task_eval ev[2];
    assert_int_equal(mtc_evaluate_outputs(&m, &d, NULL, 6, (float *[]){logits, pred}, ev, &e), 0);
    assert_int_equal(ev[0].n, 4);
    assert_int_equal(ev[1].n, 4);
    assert_true(ev[0].cls.accuracy == 0.75);
    int64_t sum = 0;
    for (int i = 0; i < 9; i++) sum += ev[0].cls.confusion[i];
    assert_int_equal(sum, 4);
    assert_true(fabs(ev[1].reg.mae - 0.625) < 1e-12);
    mtc_task_eval_free(ev, 2);
    /* over a subset (rows 2 and 4: nothing labelled for c) */
    int64_t idx[2] = {2, 4};
    float l2[6] = {0, 5, 0, 5, 0, 0}, p2[2] = {3, 4};
    assert_int_equal(mtc_evaluate_outputs(&m, &d, idx, 2, (float *[]){l2, p2}, ev, &e), 0);
    assert_int_equal(ev[0].n, 0);
    assert_int_equal(ev[1].n, 2);
    assert_true(fabs(ev[1].reg.mae - 0.5) < 1e-12);
    mtc_task_eval_free(ev, 2);
    mtc_model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cls_three_class_confusion_prf),
        cmocka_unit_test(test_metrics_count_labelled_samples_only),
        cmocka_unit_test(test_cls_macro_counts_predicted_only_classes_with_precision_0),
        cmocka_unit_test(test_auc_with_ties_known_values),
        cmocka_unit_test(test_auc_equals_pair_count_on_random_ties),
        cmocka_unit_test(test_cls_auc_separable_and_binary_case),
        cmocka_unit_test(test_bin_metrics_hand_case),
        cmocka_unit_test(test_reg_metrics_r2_known),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
