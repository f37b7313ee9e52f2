/*
 * test_prune.c — magnitude pruning (global / per layer, smallest first,
 * output rows kept alive), masks through fine-tuning and save/load, the AGP
 * formula, per-task budgets, sensitivity, structured removal (identical
 * outputs when the removed units were dead, smaller checkpoint), CLI errors;
 * pruned models stored as bitmask + values (exact round trip, files of
 * before still load, every corruption refused, smaller than dense + mask).
 */
#include "tests/testutil.h"
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *mlp_spec =
    "[input] shape=4\n[dense] units=32 act=relu\n[dense] units=16 act=relu\n"
    "[task fine] kind=cls classes=4\n[task coarse] kind=cls from=fine:0,0,1,1\n"
    "[task level] kind=reg outputs=1\n[head level]\n[dense] units=8 act=relu\n";

static void build(const char *text, mtc_model *m, uint64_t seed)
{
    mtc_err e = {0};
    if (tu_build_model(text, m, seed, &e)) fail_msg("model: %s", e.msg);
}

static void train(mtc_model *m, const mtc_dataset *d, int epochs)
{
    mtc_train_cfg cfg;
    mtc_train_cfg_default(&cfg);
    cfg.epochs = epochs;
    cfg.batch = 32;
    cfg.sched.lr = 3e-3f;
    cfg.keep_standardisation = m->mask != NULL;
    mtc_train_result res;
    mtc_err e = {0};
    if (mtc_train(m, d, &cfg, &res, &e)) fail_msg("train: %s", e.msg);
    free(res.history_json);
}

/* The same bits (masking writes pruned weights as +0.0, which is what the
 * bitmask form reloads them as, so a round trip is exact). */
static void assert_same_values(const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof *a)) fail_msg("value %lld: %.9g != %.9g", (long long)i, a[i], b[i]);
}

/* Largest pruned |w| (from orig) and smallest kept |w| over layers ls. */
static void check_smallest_pruned(const mtc_model *m, const float *orig, mtc_layer **ls, int n)
{
    float max_pruned = 0, min_kept = INFINITY;
    for (int i = 0; i < n; i++) {
        if (mtc_prune_is_output(m, ls[i])) continue; /* row guard may keep a small one */
        for (int64_t q = 0; q < ls[i]->nw; q++) {
            int64_t p = ls[i]->w_off + q;
            float a = fabsf(orig[p]);
            if (m->mask[p] == 0.0f) {
                assert_true(m->params[p] == 0.0f);
                if (a > max_pruned) max_pruned = a;
            } else if (a < min_kept) {
                min_kept = a;
            }
        }
    }
    assert_true(max_pruned <= min_kept);
}

static void test_prune_global_scope_reaches_sparsity_and_prunes_smallest(void **st)
{
    (void)st;
    mtc_model m;
    build(mlp_spec, &m, 3);
    float *orig = malloc((size_t)m.nparams * sizeof(float));
    memcpy(orig, m.params, (size_t)m.nparams * sizeof(float));
    mtc_err e = {0};
    assert_int_equal(mtc_prune_magnitude(&m, 0.6, MTC_PRUNE_GLOBAL, NULL, &e), 0);
    assert_non_null(m.mask);
    int64_t z, tot;
    double sp = mtc_prune_sparsity(&m, &z, &tot);
    assert_true(llabs(z - llround(0.6 * (double)tot)) <= 1);
    assert_true(fabs(sp - 0.6) < 1.5 / (double)tot);
    mtc_layer **ls;
    int n;
    assert_int_equal(mtc_prune_layers(&m, &ls, &n, &e), 0);
    assert_int_equal(n, 6); /* 2 trunk dense, level hidden, 3 outputs */
    check_smallest_pruned(&m, orig, ls, n);
    /* biases untouched */
    for (int i = 0; i < n; i++)
        for (int64_t q = 0; q < ls[i]->nb; q++) assert_true(m.params[ls[i]->b_off + q] == orig[ls[i]->b_off + q]);
    free(ls);
    free(orig);
    mtc_model_free(&m);
}

static void test_prune_layer_scope_reaches_sparsity_in_every_layer(void **st)
{
    (void)st;
    mtc_model m;
    build(mlp_spec, &m, 4);
    float *orig = malloc((size_t)m.nparams * sizeof(float));
    memcpy(orig, m.params, (size_t)m.nparams * sizeof(float));
    mtc_err e = {0};
    assert_int_equal(mtc_prune_magnitude(&m, 0.5, MTC_PRUNE_LAYER, NULL, &e), 0);
    mtc_layer **ls;
    int n;
    assert_int_equal(mtc_prune_layers(&m, &ls, &n, &e), 0);
    for (int i = 0; i < n; i++) {
        int64_t z;
        mtc_prune_layer_sparsity(&m, ls[i], &z);
        assert_true(llabs(z - llround(0.5 * (double)ls[i]->nw)) <= 1);
        check_smallest_pruned(&m, orig, &ls[i], 1);
    }
    free(ls);
    free(orig);
    mtc_model_free(&m);
}

static void test_prune_output_rows_keep_a_weight_and_ties_are_deterministic(void **st)
{
    (void)st;
    mtc_model m, m2;
    build(mlp_spec, &m, 5);
    build(mlp_spec, &m2, 5);
    /* ties everywhere: all weights equal in magnitude */
    for (int64_t i = 0; i < m.nparams; i++) m.params[i] = m2.params[i] = (i % 2 ? 0.5f : -0.5f);
    mtc_err e = {0};
    assert_int_equal(mtc_prune_magnitude(&m, 0.99, MTC_PRUNE_GLOBAL, NULL, &e), 0);
    assert_int_equal(mtc_prune_magnitude(&m2, 0.99, MTC_PRUNE_GLOBAL, NULL, &e), 0);
    assert_memory_equal(m.mask, m2.mask, (size_t)m.nparams * sizeof(float));
    int64_t z, tot;
    mtc_prune_sparsity(&m, &z, &tot);
    assert_true(llabs(z - llround(0.99 * (double)tot)) <= 1); /* made up elsewhere */
    for (int t = 0; t < m.spec.ntasks; t++) {
        const mtc_layer *L = &m.head[t].layers[m.head[t].n - 1];
        for (int r = 0; r < L->spec.units; r++) {
            int alive = 0;
            for (int64_t j = 0; j < L->in_size; j++) alive += m.params[L->w_off + r * L->in_size + j] != 0.0f;
            assert_true(alive >= 1);
        }
    }
    /* ties: lower index pruned first in the first trunk layer */
    const mtc_layer *L0 = &m.trunk[0].layers[0];
    assert_true(m.mask[L0->w_off] == 0.0f);
    mtc_model_free(&m);
    mtc_model_free(&m2);
}

static void test_prune_keeps_mask_after_finetune_and_save_load(void **st)
{
    (void)st;
    mtc_dataset d;
    tu_synth_data(&d, 800, 7);
    mtc_model m;
    build(mlp_spec, &m, 6);
    train(&m, &d, 2);
    mtc_err e = {0};
    assert_int_equal(mtc_prune_magnitude(&m, 0.7, MTC_PRUNE_GLOBAL, NULL, &e), 0);
    float *before = malloc((size_t)m.nparams * sizeof(float));
    memcpy(before, m.params, (size_t)m.nparams * sizeof(float));
    train(&m, &d, 2);
    int64_t masked = 0, moved = 0;
    for (int64_t i = 0; i < m.nparams; i++) {
        if (m.mask[i] == 0.0f) {
            masked++;
            assert_true(m.params[i] == 0.0f);
        } else {
            moved += m.params[i] != before[i];
        }
    }
    assert_true(masked > 0);
    assert_true(moved > 0); /* the fine-tune did train */
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "pruned.mtc");
    assert_int_equal(mtc_model_save(&m, p, "{}", &e), 0);
    mtc_model l;
    assert_int_equal(mtc_model_load(p, &l, NULL, &e), 0);
    assert_non_null(l.mask);
    assert_memory_equal(l.mask, m.mask, (size_t)m.nparams * sizeof(float));
    assert_same_values(l.params, m.params, m.nparams);
    train(&l, &d, 1); /* mask still enforced after a reload */
    for (int64_t i = 0; i < l.nparams; i++)
        if (l.mask[i] == 0.0f) assert_true(l.params[i] == 0.0f);
    mtc_model_free(&l);
    free(before);
    free(p);
    tu_rmdir(dir);
    free(dir);
    mtc_model_free(&m);
    mtc_data_free(&d);
}

/* ---- storage: bitmask + values -------------------------------------------------- */

/* No weight count here is a multiple of 8, so every bitmask has padding:
 * conv 3·1·3·3 = 27, batchnorm γ 3, dense 75·7 = 525, output 7·3 = 21. */
static const char *odd_spec =
    "[input] shape=1x5x5\n[conv] filters=3 size=3\n[batchnorm]\n[act] fn=relu\n[flatten]\n"
    "[dense] units=7 act=relu\n[task fine] kind=cls classes=3\n";

/* odd_spec (seed 4) pruned to 60% in each layer. */
static void build_pruned(mtc_model *m)
{
    build(odd_spec, m, 4);
    mtc_err e = {0};
    if (mtc_prune_magnitude(m, 0.6, MTC_PRUNE_LAYER, NULL, &e)) fail_msg("prune: %s", e.msg);
}

static void assert_same_model(const mtc_model *a, const mtc_model *b)
{
    assert_int_equal(a->nparams, b->nparams);
    assert_int_equal(a->nstats, b->nstats);
    assert_same_values(a->params, b->params, a->nparams);
    assert_memory_equal(a->stats, b->stats, (size_t)a->nstats * sizeof(float));
    assert_non_null(a->mask);
    assert_non_null(b->mask);
    assert_memory_equal(a->mask, b->mask, (size_t)a->nparams * sizeof(float));
}

static const mtc_tensor *find_suffix(const mtc_ckpt *c, const mtc_layer *L, const char *suffix)
{
    char name[160];
    snprintf(name, sizeof name, "%s.%s", L->name, suffix);
    return mtc_ckpt_find(c, name);
}

/* Layer L is stored as its mask's bits (LSB first, padding 0) and its
 * kept weights in order, and as nothing else. */
static int check_bits_form(mtc_model *m, mtc_layer *L, void *ctx)
{
    const mtc_ckpt *c = ctx;
    if (L->w_off < 0) return 0;
    const mtc_tensor *b = find_suffix(c, L, "weight_bits"), *z = find_suffix(c, L, "weight_nz");
    assert_non_null(b);
    assert_non_null(z);
    assert_null(find_suffix(c, L, "weight"));
    assert_null(find_suffix(c, L, "mask"));
    assert_int_equal(b->dtype, MTC_U8);
    assert_int_equal(b->ndim, 1);
    assert_int_equal(b->dims[0], (L->nw + 7) / 8);
    assert_int_equal(z->dtype, MTC_F32);
    assert_int_equal(z->ndim, 1);
    const uint8_t *bits = b->data;
    const float *nz = z->data;
    int64_t j = 0;
    for (int64_t i = 0; i < 8 * b->dims[0]; i++) {
        int bit = bits[i >> 3] >> (i & 7) & 1;
        if (i >= L->nw) { assert_int_equal(bit, 0); continue; }
        assert_int_equal(bit, m->mask[L->w_off + i] != 0.0f);
        if (bit) assert_true(nz[j++] == m->params[L->w_off + i]);
    }
    assert_int_equal(j, z->dims[0]);
    return 0;
}

static void test_prune_pruned_model_saves_bitmask_and_values_and_reloads_exactly(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "pruned.mtc"), *q = tu_path(dir, "dense.mtc");
    mtc_model m, l;
    build_pruned(&m);
    mtc_err e = {0};
    assert_int_equal(mtc_model_save(&m, p, "{}", &e), 0);
    mtc_ckpt c;
    assert_int_equal(mtc_ckpt_load(p, &c, &e), 0);
    assert_int_equal(mtc_model_for_each_layer(&m, check_bits_form, &c), 0);
    mtc_ckpt_free(&c);
    assert_int_equal(mtc_model_load(p, &l, NULL, &e), 0);
    assert_same_model(&m, &l);
    mtc_model_free(&l);
    mtc_model_free(&m);

    /* an unpruned model keeps dense ".weight" tensors and loads without a mask */
    build(odd_spec, &m, 4);
    assert_int_equal(mtc_model_save(&m, q, "{}", &e), 0);
    assert_int_equal(mtc_ckpt_load(q, &c, &e), 0);
    assert_non_null(mtc_ckpt_find(&c, "trunk.0.conv.weight"));
    assert_null(mtc_ckpt_find(&c, "trunk.0.conv.weight_bits"));
    assert_null(mtc_ckpt_find(&c, "trunk.0.conv.mask"));
    mtc_ckpt_free(&c);
    assert_int_equal(mtc_model_load(q, &l, NULL, &e), 0);
    assert_null(l.mask);
    assert_memory_equal(l.params, m.params, (size_t)m.nparams * sizeof(float));
    mtc_model_free(&l);
    mtc_model_free(&m);
    free(p); free(q);
    tu_rmdir(dir);
    free(dir);
}

/* Outputs of the runtime for 9 fixed inputs. */
static float *rt_outputs(const char *path)
{
    mtc_rt *rt = NULL;
    mtc_err e = {0};
    if (mtc_rt_load(path, &rt, &e)) fail_msg("runtime: %s", e.msg);
    float x[9 * 25], *out = malloc(9 * 3 * sizeof(float)), *outs[1] = {out};
    for (int i = 0; i < 9 * 25; i++) x[i] = (float)((i * 37) % 11) / 5.0f - 1.0f;
    if (mtc_rt_run(rt, x, 9, outs, &e)) fail_msg("run: %s", e.msg);
    mtc_rt_free(rt);
    return out;
}

static void test_prune_dense_and_mask_file_of_before_loads_identically(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *old = tu_path(dir, "old.mtc"), *now = tu_path(dir, "new.mtc");
    mtc_model m, l;
    build_pruned(&m);
    mtc_err e = {0};
    assert_int_equal(tu_save_dense_mask(&m, old, &e), 0);
    mtc_ckpt c;
    assert_int_equal(mtc_ckpt_load(old, &c, &e), 0);
    assert_non_null(mtc_ckpt_find(&c, "trunk.4.dense.weight"));
    assert_non_null(mtc_ckpt_find(&c, "trunk.4.dense.mask"));
    assert_null(mtc_ckpt_find(&c, "trunk.4.dense.weight_bits"));
    mtc_ckpt_free(&c);
    assert_int_equal(mtc_model_load(old, &l, NULL, &e), 0);
    assert_same_model(&m, &l);
    assert_int_equal(mtc_model_save(&l, now, "{}", &e), 0); /* re-saved as bitmask + values */
    float *a = rt_outputs(old), *b = rt_outputs(now);
    assert_memory_equal(a, b, 9 * 3 * sizeof(float));
    free(a); free(b);
    mtc_model_free(&l);
    mtc_model_free(&m);
    free(old); free(now);
    tu_rmdir(dir);
    free(dir);
}

/* Both loaders refuse path with one line naming it, `tensor` and `what`. */
static void expect_refused(const char *path, const char *tensor, const char *what)
{
    mtc_model m;
    mtc_rt *rt = NULL;
    mtc_err e = {0};
    for (int k = 0; k < 2; k++) {
        int rc = k ? mtc_rt_load(path, &rt, &e) : mtc_model_load(path, &m, NULL, &e);
        if (rc != MTC_EINPUT) fail_msg("%s: %s loaded (rc %d)", tensor, k ? "runtime" : "model", rc);
        if (!strstr(e.msg, path) || !strstr(e.msg, tensor) || !strstr(e.msg, what) || strchr(e.msg, '\n'))
            fail_msg("want '%s' and '%s' in: %s", tensor, what, e.msg);
    }
}

static void test_prune_corrupt_bitmask_or_values_fail_naming_file_and_tensor(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "pruned.mtc"), *q = tu_path(dir, "bad.mtc");
    mtc_model m;
    build_pruned(&m);
    mtc_err e = {0};
    assert_int_equal(mtc_model_save(&m, p, "{}", &e), 0);
    mtc_model_free(&m);
    const char *bn = "trunk.4.dense.weight_bits", *zn = "trunk.4.dense.weight_nz"; /* 525 weights: 66 bytes */
    enum { LONGER, SHORTER, PADDING, S8, EXTRA_BIT, FEWER_NZ, MORE_NZ, NAN_NZ, NO_NZ, BOTH, NCASES };
    for (int k = 0; k < NCASES; k++) {
        mtc_ckpt c;
        assert_int_equal(mtc_ckpt_load(p, &c, &e), 0);
        mtc_tensor *b = (mtc_tensor *)mtc_ckpt_find(&c, bn), *z = (mtc_tensor *)mtc_ckpt_find(&c, zn);
        assert_int_equal(b->dims[0], 66);
        uint8_t bits[67] = {0};
        memcpy(bits, b->data, 66);
        int64_t n = b->dims[0], nz = z->dims[0];
        float *vals = calloc((size_t)nz + 1, sizeof(float));
        memcpy(vals, z->data, (size_t)nz * sizeof(float));
        const char *tensor = bn, *what = "";
        switch (k) {
        case LONGER: n = 67; what = "a bit per weight"; break;
        case SHORTER: n = 65; what = "a bit per weight"; break;
        case PADDING: bits[65] |= 0x80; what = "padding"; break; /* weight 527 of 525 */
        case S8: what = "a bit per weight"; break;
        case EXTRA_BIT: /* a pruned weight marked kept: one value short */
            for (int i = 0; i < 525; i++)
                if (!(bits[i >> 3] >> (i & 7) & 1)) { bits[i >> 3] |= (uint8_t)(1u << (i & 7)); break; }
            tensor = zn; what = "bits set";
            break;
        case FEWER_NZ: nz--; tensor = zn; what = "bits set"; break;
        case MORE_NZ: nz++; tensor = zn; what = "bits set"; break;
        case NAN_NZ: vals[1] = NAN; tensor = zn; what = "not finite"; break;
        case NO_NZ: snprintf(z->name, sizeof z->name, "trunk.4.dense.unused"); tensor = zn; what = "missing"; break;
        case BOTH: {
            int64_t dims[2] = {7, 75};
            float *w = calloc(525, sizeof(float));
            assert_int_equal(mtc_ckpt_add(&c, "trunk.4.dense.weight", MTC_F32, 2, dims, w, &e), 0);
            free(w);
            what = "both";
            break;
        }
        }
        if (k != NO_NZ) {
            assert_int_equal(mtc_ckpt_add(&c, bn, k == S8 ? MTC_S8 : MTC_U8, 1, &n, bits, &e), 0);
            assert_int_equal(mtc_ckpt_add(&c, zn, MTC_F32, 1, &nz, vals, &e), 0);
        }
        free(vals);
        assert_int_equal(mtc_ckpt_save(q, &c, &e), 0);
        mtc_ckpt_free(&c);
        expect_refused(q, tensor, what);
    }
    free(p); free(q);
    tu_rmdir(dir);
    free(dir);
}

static void test_prune_90_percent_file_is_smaller_than_dense_plus_mask(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *old = tu_path(dir, "old.mtc"), *now = tu_path(dir, "new.mtc");
    mtc_model m, a, b;
    build("[input] shape=256\n[dense] units=128 act=relu\n[task fine] kind=cls classes=4\n", &m, 5);
    mtc_err e = {0};
    assert_int_equal(mtc_prune_magnitude(&m, 0.9, MTC_PRUNE_GLOBAL, NULL, &e), 0);
    assert_int_equal(mtc_model_save(&m, now, "{}", &e), 0);
    assert_int_equal(tu_save_dense_mask(&m, old, &e), 0);
    struct stat so, sn;
    assert_int_equal(stat(old, &so), 0);
    assert_int_equal(stat(now, &sn), 0);
    print_message("90%% pruned, 33 284 parameters: dense + mask %lld bytes, bitmask + values %lld\n",
                  (long long)so.st_size, (long long)sn.st_size);
    assert_true(sn.st_size < so.st_size);
    assert_int_equal(mtc_model_load(old, &a, NULL, &e), 0); /* the same model either way */
    assert_int_equal(mtc_model_load(now, &b, NULL, &e), 0);
    assert_same_model(&a, &b);
    mtc_model_free(&a); mtc_model_free(&b); mtc_model_free(&m);
    free(old); free(now);
    tu_rmdir(dir);
    free(dir);
}

static void test_agp_schedule_matches_formula(void **st)
{
    (void)st;
    double si = 0.1, sf = 0.9;
    int n = 10;
    double prev = -1;
    for (int t = 0; t <= n; t++) {
        double want = sf + (si - sf) * pow(1.0 - (double)t / n, 3);
        double got = mtc_agp_sparsity(si, sf, t, n);
        assert_true(fabs(got - want) < 1e-12);
        assert_true(got >= prev);
        prev = got;
    }
    assert_true(fabs(mtc_agp_sparsity(0, 0.9, 5, 10) - 0.7875) < 1e-12);
    assert_true(mtc_agp_sparsity(0, 0.9, 0, 10) == 0.0);
    assert_true(fabs(mtc_agp_sparsity(0, 0.9, 10, 10) - 0.9) < 1e-12);
    assert_true(fabs(mtc_agp_sparsity(0, 0.9, 20, 10) - 0.9) < 1e-12); /* clamped */
}

static void test_protect_budget_respected_oneshot_and_agp(void **st)
{
    (void)st;
    mtc_dataset d;
    tu_synth_data(&d, 1500, 8);
    for (int agp = 0; agp < 2; agp++) {
        mtc_model m;
        build(mlp_spec, &m, 9);
        train(&m, &d, 6);
        mtc_prune_cfg c;
        mtc_prune_cfg_default(&c);
        c.sparsity = 0.97;
        c.agp = agp;
        c.steps = 8;
        c.finetune_epochs = agp;
        c.train.batch = 32;
        mtc_err e = {0};
        assert_int_equal(mtc_prune_protect_parse(&m, "fine=0.5,coarse=1", &c.protect, &e), 0);
        assert_int_equal(c.protect.n, 2);
        mtc_prune_result r;
        if (mtc_prune_run(&m, &d, &c, &r, &e)) fail_msg("run: %s", e.msg);
        print_message("%s: sparsity %.4f (steps %d), fine %.4f -> %.4f\n", agp ? "agp" : "one shot", r.sparsity,
                      r.steps_done, r.val_before[0], r.val_after[0]);
        assert_true(r.limited_by_budget);
        assert_true(r.sparsity < 0.97);
        assert_true(r.sparsity > 0.0);
        /* re-measure independently on the same validation split */
        int64_t *ti, *vi, nt, nv;
        assert_int_equal(mtc_data_split(d.n, d.group, c.train.val_frac, c.train.seed, &ti, &nt, &vi, &nv, &e), 0);
        double now[MTC_MAX_TASKS];
        assert_int_equal(mtc_prune_eval_primary(&m, &d, vi, nv, now, &e), 0);
        assert_true(100 * (r.val_before[0] - now[0]) <= 0.5 + 1e-9);
        assert_true(100 * (r.val_before[1] - now[1]) <= 1.0 + 1e-9);
        free(ti);
        free(vi);
        mtc_model_free(&m);
    }
    mtc_model m;
    build(mlp_spec, &m, 9);
    mtc_prune_protect p;
    mtc_err e = {0};
    assert_int_equal(mtc_prune_protect_parse(&m, "nosuch=1", &p, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "nosuch"));
    assert_int_equal(mtc_prune_protect_parse(&m, "fine=x", &p, &e), MTC_EINPUT);
    mtc_model_free(&m);
    mtc_data_free(&d);
}

static void test_sensitivity_reports_every_task_per_layer(void **st)
{
    (void)st;
    mtc_dataset d;
    tu_synth_data(&d, 600, 10);
    mtc_model m;
    build(mlp_spec, &m, 11);
    train(&m, &d, 3);
    float *orig = malloc((size_t)m.nparams * sizeof(float));
    memcpy(orig, m.params, (size_t)m.nparams * sizeof(float));
    double grid[] = {0.0, 0.5, 0.95};
    mtc_prune_sensitivity s;
    mtc_err e = {0};
    assert_int_equal(mtc_prune_sensitivity_scan(&m, &d, NULL, 0, grid, 3, &s, &e), 0);
    assert_int_equal(s.nlayers, 6);
    assert_int_equal(s.ntasks, 3);
    assert_memory_equal(orig, m.params, (size_t)m.nparams * sizeof(float)); /* restored */
    assert_null(m.mask);
    for (int l = 0; l < s.nlayers; l++)
        for (int t = 0; t < 3; t++)
            if (!(fabs(s.metric[(l * 3 + 0) * 3 + t] - s.base[t]) < 1e-12))
                fail_msg("layer %d task %d: %.17g vs base %.17g", l, t, s.metric[(l * 3 + 0) * 3 + t], s.base[t]);
    /* the level head's hidden layer only matters to task level */
    int lvl = -1;
    for (int l = 0; l < s.nlayers; l++)
        if (!strcmp(s.layer[l], "head.level.0.dense")) lvl = l;
    assert_true(lvl >= 0);
    assert_true(s.metric[(lvl * 3 + 2) * 3 + 0] == s.base[0]);
    assert_true(s.metric[(lvl * 3 + 2) * 3 + 2] != s.base[2]);
    mtc_prune_sensitivity_free(&s);
    free(orig);
    mtc_model_free(&m);
    mtc_data_free(&d);
}

/* ---- structured ---------------------------------------------------------------- */

/* Zeroes the incoming weights and bias of units u of L (dense rows / conv filters). */
static void kill_unit(mtc_model *m, const mtc_layer *L, int u)
{
    int U = L->spec.type == MTC_L_CONV ? L->cs.OC : L->spec.units;
    int64_t R = L->nw / U;
    for (int64_t j = 0; j < R; j++) m->params[L->w_off + u * R + j] = 0.0f;
    m->params[L->b_off + u] = 0.0f;
}

static void predict_all(mtc_model *m, const mtc_dataset *d, float **outs)
{
    mtc_err e = {0};
    if (mtc_model_predict(m, d, NULL, 0, 64, outs, &e)) fail_msg("predict: %s", e.msg);
}

static int64_t save_size(const mtc_model *m, const char *dir, const char *name)
{
    char *p = tu_path(dir, name);
    mtc_err e = {0};
    if (mtc_model_save(m, p, "{}", &e)) fail_msg("save: %s", e.msg);
    struct stat sb;
    int64_t n = stat(p, &sb) ? -1 : (int64_t)sb.st_size;
    free(p);
    return n;
}

static void check_same_outputs(mtc_model *a, mtc_model *b, const mtc_dataset *d)
{
    float *oa[MTC_MAX_TASKS] = {0}, *ob[MTC_MAX_TASKS] = {0};
    predict_all(a, d, oa);
    predict_all(b, d, ob);
    for (int t = 0; t < a->spec.ntasks; t++) {
        for (int64_t i = 0; i < d->n * a->spec.tasks[t].dim; i++)
            if (fabsf(oa[t][i] - ob[t][i]) > 1e-6f * (1 + fabsf(oa[t][i])))
                fail_msg("task %d output %lld: %g vs %g", t, (long long)i, oa[t][i], ob[t][i]);
        free(oa[t]);
        free(ob[t]);
    }
}

static void test_structured_neurons_identical_when_removed_units_were_dead(void **st)
{
    (void)st;
    mtc_dataset d;
    tu_synth_data(&d, 200, 12);
    mtc_model m, p;
    build(mlp_spec, &m, 13);
    /* dead units: half of each hidden dense layer */
    mtc_layer *L0 = &m.trunk[0].layers[0], *L1 = &m.trunk[0].layers[1], *H = &m.head[2].layers[0];
    for (int u = 0; u < 32; u += 2) kill_unit(&m, L0, u);
    for (int u = 1; u < 16; u += 2) kill_unit(&m, L1, u);
    for (int u = 0; u < 4; u++) kill_unit(&m, H, u);
    mtc_struct_cfg c;
    mtc_struct_cfg_default(&c);
    c.keep = 0.5;
    int64_t removed;
    mtc_err e = {0};
    if (mtc_prune_structured(&m, &c, &p, &removed, &e)) fail_msg("structured: %s", e.msg);
    assert_int_equal(removed, 16 + 8 + 4);
    assert_int_equal(p.trunk[0].layers[0].spec.units, 16);
    assert_int_equal(p.trunk[0].layers[1].spec.units, 8);
    assert_int_equal(p.head[2].layers[0].spec.units, 4);
    assert_int_equal(p.head[0].layers[0].in_size, 8); /* every head's first layer shrank */
    assert_int_equal(p.head[1].layers[0].in_size, 8);
    assert_true(p.nparams < m.nparams / 2);
    assert_non_null(strstr(p.spec_text, "units=16"));
    check_same_outputs(&m, &p, &d);
    char *dir = tu_mkdtemp();
    int64_t big = save_size(&m, dir, "a.mtc"), small = save_size(&p, dir, "b.mtc");
    assert_true(small > 0 && small < big);
    /* the new checkpoint loads on its own (spec + tensors agree) */
    char *bp = tu_path(dir, "b.mtc");
    mtc_model l;
    assert_int_equal(mtc_model_load(bp, &l, NULL, &e), 0);
    check_same_outputs(&m, &l, &d);
    mtc_model_free(&l);
    free(bp);
    tu_rmdir(dir);
    free(dir);
    mtc_model_free(&p);
    /* taylor ranks dead units lowest too (zero weights -> zero |w·g|) */
    int64_t *idx = malloc(200 * sizeof(int64_t));
    for (int i = 0; i < 200; i++) idx[i] = i;
    c.rank = MTC_RANK_TAYLOR;
    c.d = &d; c.idx = idx; c.n = 200; c.batches = 2; c.batch = 64;
    if (mtc_prune_structured(&m, &c, &p, &removed, &e)) fail_msg("taylor: %s", e.msg);
    check_same_outputs(&m, &p, &d);
    mtc_model_free(&p);
    free(idx);
    mtc_model_free(&m);
    mtc_data_free(&d);
}

/* 1x6x6 images from the 4 features (tiled), same tasks. */
static void make_image_data(mtc_dataset *img, const mtc_dataset *d)
{
    *img = *d;
    img->c = 1; img->h = 6; img->w = 6;
    img->x_f32 = malloc(sizeof(float) * (size_t)(d->n * 36));
    for (int64_t i = 0; i < d->n; i++)
        for (int j = 0; j < 36; j++) img->x_f32[i * 36 + j] = d->x_f32[i * 4 + j % 4] * (1 + 0.1f * j);
}

static void test_structured_channels_identical_when_removed_channels_were_dead(void **st)
{
    (void)st;
    const char *spec = "[input] shape=1x6x6\n[conv] filters=4 size=3 act=relu\n[maxpool] size=2\n"
                       "[conv] filters=6 size=3 act=relu\n[flatten]\n[dense] units=8 act=relu\n"
                       "[task fine] kind=cls classes=4\n[task level] kind=reg outputs=1\n";
    mtc_dataset d0, d;
    tu_synth_data(&d0, 100, 14);
    make_image_data(&d, &d0);
    mtc_model m, p;
    build(spec, &m, 15);
    kill_unit(&m, &m.trunk[0].layers[0], 1);
    kill_unit(&m, &m.trunk[0].layers[0], 3);
    for (int u = 0; u < 3; u++) kill_unit(&m, &m.trunk[0].layers[2], 2 * u);
    mtc_struct_cfg c;
    mtc_struct_cfg_default(&c);
    c.kind = MTC_STRUCT_CHANNELS;
    c.keep = 0.5;
    c.rank = MTC_RANK_L2;
    int64_t removed;
    mtc_err e = {0};
    if (mtc_prune_structured(&m, &c, &p, &removed, &e)) fail_msg("structured: %s", e.msg);
    assert_int_equal(removed, 2 + 3);
    assert_int_equal(p.trunk[0].layers[0].spec.filters, 2);
    assert_int_equal(p.trunk[0].layers[2].spec.filters, 3);
    assert_int_equal(p.trunk[0].layers[4].in_size, 3 * 3 * 3); /* 3 channels x 3x3 */
    check_same_outputs(&m, &p, &d);
    mtc_model_free(&p);
    /* depthwise-separable: the depthwise conv and the conv feeding it keep
     * their channels (their channels pair up), the pointwise conv after is cut */
    mtc_model g, gp;
    build("[input] shape=1x6x6\n[conv] filters=4 size=3 act=relu\n[conv] filters=4 size=3 groups=4 act=relu\n"
          "[conv] filters=6 size=1 act=relu\n[flatten]\n[dense] units=8 act=relu\n"
          "[task fine] kind=cls classes=4\n[task level] kind=reg outputs=1\n", &g, 16);
    for (int u = 0; u < 3; u++) kill_unit(&g, &g.trunk[0].layers[2], 2 * u + 1);
    if (mtc_prune_structured(&g, &c, &gp, &removed, &e)) fail_msg("structured, depthwise: %s", e.msg);
    assert_int_equal(removed, 3);
    assert_int_equal(gp.trunk[0].layers[0].spec.filters, 4);
    assert_int_equal(gp.trunk[0].layers[1].spec.filters, 4);
    assert_int_equal(gp.trunk[0].layers[2].spec.filters, 3);
    check_same_outputs(&g, &gp, &d);
    mtc_model_free(&g);
    mtc_model_free(&gp);
    /* a residual block: the conv feeding it and the one closing it keep
     * their channels, the one inside is cut */
    build("[input] shape=1x6x6\n[conv] filters=4 size=3 pad=1 act=relu\n[residual]\n[conv] filters=6 size=3 pad=1 "
          "act=relu\n[conv] filters=4 size=3 pad=1\n[add] act=relu\n[flatten]\n[dense] units=8 act=relu\n"
          "[task fine] kind=cls classes=4\n[task level] kind=reg outputs=1\n", &g, 17);
    for (int u = 0; u < 3; u++) kill_unit(&g, &g.trunk[0].layers[2], 2 * u);
    if (mtc_prune_structured(&g, &c, &gp, &removed, &e)) fail_msg("structured, residual: %s", e.msg);
    assert_int_equal(removed, 3);
    assert_int_equal(gp.trunk[0].layers[0].spec.filters, 4);
    assert_int_equal(gp.trunk[0].layers[2].spec.filters, 3);
    assert_int_equal(gp.trunk[0].layers[3].spec.filters, 4);
    check_same_outputs(&g, &gp, &d);
    mtc_model_free(&g);
    mtc_model_free(&gp);
    /* MMoE is refused with a message that says so */
    mtc_model mm;
    build("[input] shape=4\n[mmoe] experts=2\n[dense] units=8 act=relu\n[task fine] kind=cls classes=4\n", &mm, 1);
    assert_int_equal(mtc_prune_structured(&mm, &c, &p, NULL, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "MMoE"));
    mtc_model_free(&mm);
    mtc_model_free(&m);
    free(d.x_f32);
    mtc_data_free(&d0);
}

/* ---- CLI ------------------------------------------------------------------------ */

static void test_cli_prune_errors_and_a_csv_run(void **st)
{
    (void)st;
    char *dir = tu_mkdtemp(), *out = NULL, *err = NULL, args[2048];
    assert_int_equal(tu_run_mtc(dir, "prune x.mtc -o y.mtc --sparsity 1.5", &out, &err), 2);
    assert_non_null(strstr(err, "--sparsity"));
    free(out); free(err);
    snprintf(args, sizeof args, "prune '%s/missing.mtc' -o '%s/y.mtc' --sparsity 0.5", dir, dir);
    assert_int_equal(tu_run_mtc(dir, args, &out, &err), 2);
    assert_non_null(strstr(err, "missing.mtc"));
    free(out); free(err);
    assert_int_equal(tu_run_mtc(dir, "prune -o y.mtc --sparsity 0.5", &out, &err), 2);
    assert_non_null(strstr(err, "model"));
    free(out); free(err);
    assert_int_equal(tu_run_mtc(dir, "prune --help", &out, &err), 0);
    assert_non_null(strstr(out, "--structured"));
    free(out); free(err);

    /* a small CSV problem end to end */
    char *csv = tu_path(dir, "d.csv"), *model = tu_path(dir, "m.mtc"), *pr = tu_path(dir, "p.mtc");
    tu_write_synth_csv(csv, 400, 16);
    mtc_model m;
    build("[input] shape=4 columns=x0,x1,x2,x3\n[dense] units=16 act=relu\n[task fine] kind=cls classes=4\n", &m, 2);
    mtc_err e = {0};
    assert_int_equal(mtc_model_save(&m, model, "{}", &e), 0);
    snprintf(args, sizeof args, "prune '%s' -o '%s' --sparsity 0.5 --data 'csv:%s' --json", model, pr, csv);
    if (tu_run_mtc(dir, args, &out, &err) != 0) fail_msg("prune: %s", err);
    mtc_json j;
    assert_int_equal(mtc_json_parse(out, strlen(out), &j, &e), 0);
    assert_true(fabs(mtc_json_num(&j, "sparsity", -1) - 0.5) < 0.01);
    assert_non_null(mtc_json_get(&j, "test_after"));
    mtc_json_free(&j);
    free(out); free(err);
    mtc_model l;
    char *meta = NULL;
    assert_int_equal(mtc_model_load(pr, &l, &meta, &e), 0);
    assert_non_null(l.mask);
    assert_non_null(strstr(meta, "\"producer\":\"mtc prune\""));
    assert_non_null(strstr(meta, "\"hash\""));
    free(meta);
    mtc_model_free(&l);
    snprintf(args, sizeof args, "prune '%s' -o '%s' --structured neurons --keep 0.25 --data 'csv:%s' --json", model, pr, csv);
    if (tu_run_mtc(dir, args, &out, &err) != 0) fail_msg("structured: %s", err);
    assert_non_null(strstr(out, "units=4"));
    free(out); free(err);
    snprintf(args, sizeof args, "prune --sensitivity '%s' --data 'csv:%s' --grid 0.5,0.9 --report-json '%s/s.json'",
             model, csv, dir);
    if (tu_run_mtc(dir, args, &out, &err) != 0) fail_msg("sensitivity: %s", err);
    assert_non_null(strstr(out, "task fine"));
    free(out); free(err);
    mtc_model_free(&m);
    free(csv); free(model); free(pr);
    tu_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prune_global_scope_reaches_sparsity_and_prunes_smallest),
        cmocka_unit_test(test_prune_layer_scope_reaches_sparsity_in_every_layer),
        cmocka_unit_test(test_prune_output_rows_keep_a_weight_and_ties_are_deterministic),
        cmocka_unit_test(test_prune_keeps_mask_after_finetune_and_save_load),
        cmocka_unit_test(test_prune_pruned_model_saves_bitmask_and_values_and_reloads_exactly),
        cmocka_unit_test(test_prune_dense_and_mask_file_of_before_loads_identically),
        cmocka_unit_test(test_prune_corrupt_bitmask_or_values_fail_naming_file_and_tensor),
        cmocka_unit_test(test_prune_90_percent_file_is_smaller_than_dense_plus_mask),
        cmocka_unit_test(test_agp_schedule_matches_formula),
        cmocka_unit_test(test_protect_budget_respected_oneshot_and_agp),
        cmocka_unit_test(test_sensitivity_reports_every_task_per_layer),
        cmocka_unit_test(test_structured_neurons_identical_when_removed_units_were_dead),
        cmocka_unit_test(test_structured_channels_identical_when_removed_channels_were_dead),
        cmocka_unit_test(test_cli_prune_errors_and_a_csv_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
