/* test_json.c — JSON parser and writer: round trips, escapes, limits, errors. */
#include "tests/testutil.h"
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *s, mtc_json *j, mtc_err *e)
{
    return mtc_json_parse(s, strlen(s), j, e);
}

/* Structural equality of two DOMs. */
static int json_equal(const mtc_json *a, const mtc_json *b)
{
    if (a->type != b->type) return 0;
    switch (a->type) {
    case MTC_JNULL: return 1;
    case MTC_JBOOL:
    case MTC_JNUM: return a->num == b->num;
    case MTC_JSTR: return !strcmp(a->str, b->str);
    default:
        if (a->n != b->n) return 0;
        for (int i = 0; i < a->n; i++) {
            if (a->type == MTC_JOBJ && strcmp(a->keys[i], b->keys[i])) return 0;
            if (!json_equal(&a->items[i], &b->items[i])) return 0;
        }
        return 1;
    }
}

static void test_json_parse_then_print_round_trips(void **st)
{
    (void)st;
    const char *src =
        "{\"name\": \"teacher\", \"epochs\": 12, \"lr\": 0.001, \"ok\": true, \"no\": false,"
        " \"nil\": null, \"tasks\": [{\"t\": \"fashion\", \"acc\": 0.9123},"
        " {\"t\": \"super\", \"acc\": 0.97}], \"empty\": {}, \"e2\": [], \"neg\": -1.5e-7}";
    mtc_json a, b;
    mtc_err e = {0};
    assert_int_equal(parse(src, &a, &e), 0);
    assert_int_equal(a.type, MTC_JOBJ);
    assert_string_equal(mtc_json_str(&a, "name"), "teacher");
    assert_true(mtc_json_num(&a, "epochs", 0) == 12);
    assert_true(mtc_json_num(&a, "lr", 0) == 0.001);
    assert_true(mtc_json_num(&a, "missing", 7) == 7);
    assert_null(mtc_json_str(&a, "epochs"));
    const mtc_json *tasks = mtc_json_get(&a, "tasks");
    assert_non_null(tasks);
    assert_int_equal(tasks->n, 2);
    assert_string_equal(mtc_json_str(&tasks->items[1], "t"), "super");

    mtc_jw w;
    mtc_jw_init(&w);
    mtc_jw_value(&w, &a);
    assert_false(w.oom);
    assert_int_equal(parse(w.buf, &b, &e), 0);
    assert_true(json_equal(&a, &b));
    /* printing is deterministic: print(parse(print(x))) == print(x) */
    mtc_jw w2;
    mtc_jw_init(&w2);
    mtc_jw_value(&w2, &b);
    assert_string_equal(w.buf, w2.buf);
    mtc_jw_free(&w);
    mtc_jw_free(&w2);
    mtc_json_free(&a);
    mtc_json_free(&b);
}

static void test_json_writer_commas_and_numbers(void **st)
{
    (void)st;
    mtc_jw w;
    mtc_jw_init(&w);
    mtc_jw_obj(&w);
    mtc_jw_kint(&w, "a", -42);
    mtc_jw_knum(&w, "b", 0.1);
    mtc_jw_knum(&w, "f", (double)0.912345f); /* needs 16 digits as a double */
    mtc_jw_knum(&w, "big", 123456789012.0);
    mtc_jw_knum(&w, "inf", INFINITY);
    mtc_jw_knum(&w, "nan", NAN);
    mtc_jw_key(&w, "arr");
    mtc_jw_arr(&w);
    mtc_jw_int(&w, 1);
    mtc_jw_bool(&w, 1);
    mtc_jw_null(&w);
    mtc_jw_raw(&w, "{\"x\":[1,2]}");
    mtc_jw_arr(&w);
    mtc_jw_arr_end(&w);
    mtc_jw_arr_end(&w);
    mtc_jw_kstr(&w, "s", "x");
    mtc_jw_obj_end(&w);
    assert_string_equal(w.buf, "{\"a\":-42,\"b\":0.1,\"f\":0.9123449921607971,\"big\":123456789012,"
                               "\"inf\":null,\"nan\":null,\"arr\":[1,true,null,{\"x\":[1,2]},[]],"
                               "\"s\":\"x\"}");
    mtc_jw_free(&w);

    /* every double we print reads back bit-exact */
    mtc_rng r;
    mtc_rng_seed(&r, 5);
    for (int i = 0; i < 2000; i++) {
        uint64_t bits = mtc_rng_u64(&r);
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v)) continue;
        mtc_jw_init(&w);
        mtc_jw_num(&w, v);
        mtc_json j;
        assert_int_equal(parse(w.buf, &j, NULL), 0);
        assert_true(j.num == v);
        mtc_jw_free(&w);
    }
}

static void test_json_string_escapes_both_ways(void **st)
{
    (void)st;
    mtc_json j;
    mtc_err e = {0};
    assert_int_equal(parse("\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u00e9 \\u20AC \\ud83d\\ude00\"",
                           &j, &e), 0);
    assert_int_equal(j.type, MTC_JSTR);
    assert_string_equal(j.str, "q\" b\\ s/ \b\f\n\r\t \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");

    mtc_jw w;
    mtc_jw_init(&w);
    mtc_jw_str(&w, j.str);
    mtc_jw_str(&w, "\x01\x1f");
    assert_string_equal(w.buf, "\"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t \xc3\xa9 \xe2\x82\xac "
                               "\xf0\x9f\x98\x80\",\"\\u0001\\u001f\"");
    mtc_json_free(&j);
    /* writer output parses back to the original bytes */
    mtc_jw_free(&w);
    const char *nasty = "tab\there \"quoted\" back\\slash \x7f \x01";
    mtc_jw_init(&w);
    mtc_jw_str(&w, nasty);
    assert_int_equal(parse(w.buf, &j, &e), 0);
    assert_string_equal(j.str, nasty);
    mtc_json_free(&j);
    mtc_jw_free(&w);
}

static void test_json_deep_nesting_rejected(void **st)
{
    (void)st;
    char buf[400];
    mtc_json j;
    mtc_err e = {0};
    for (int depth = 60; depth <= 70; depth++) {
        int n = 0;
        for (int i = 0; i < depth; i++) buf[n++] = '[';
        for (int i = 0; i < depth; i++) buf[n++] = ']';
        buf[n] = 0;
        int rc = parse(buf, &j, &e);
        if (depth <= 64) {
            assert_int_equal(rc, 0);
            mtc_json_free(&j);
        } else {
            assert_int_equal(rc, MTC_EINPUT);
            assert_non_null(strstr(e.msg, "nesting too deep at byte 64"));
        }
    }
    /* 100k opening brackets: no stack overflow, clean error */
    size_t big = 100000;
    char *s = malloc(big + 1);
    memset(s, '{', big);
    s[big] = 0;
    assert_int_equal(mtc_json_parse(s, big, &j, &e), MTC_EINPUT);
    free(s);
}

static void test_json_malformed_inputs_each_give_an_error(void **st)
{
    (void)st;
    static const char *bad[] = {
        "", " ", "{", "}", "[", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{\"a\":1,}",
        "{a:1}", "{\"a\" 1}", "[1 2]", "\"abc", "\"a\\\"", "\"\\x\"", "\"\\u12\"",
        "\"\\u12G4\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\u0000\"",
        "\"tab\tinside\"", "01", "-", "1.", ".5", "1e", "1e+", "+1", "0x10", "1e999",
        "-1e400", "tru", "nul", "falsey", "True", "[1]x", "{}{}", "nan", "Infinity",
        "[\"a\" : 1]", "{\"a\":1 \"b\":2}", "\"\\", "[[[[", "1 2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mtc_json j;
        mtc_err e = {0};
        int rc = parse(bad[i], &j, &e);
        if (rc != MTC_EINPUT) fail_msg("accepted malformed JSON: %s", bad[i]);
        assert_non_null(strstr(e.msg, " at byte "));
        assert_int_equal(j.type, MTC_JNULL);
    }
    /* a long number is bounded, not overflowed */
    char num[400];
    memset(num, '1', sizeof num - 1);
    num[sizeof num - 1] = 0;
    mtc_json j;
    mtc_err e = {0};
    assert_int_equal(parse(num, &j, &e), MTC_EINPUT);
    assert_non_null(strstr(e.msg, "number too long"));
    /* only [0, len) is read: a valid prefix of a longer buffer */
    assert_int_equal(mtc_json_parse("[1,2]garbage", 5, &j, &e), 0);
    assert_int_equal(j.n, 2);
    mtc_json_free(&j);
    assert_int_equal(mtc_json_parse("\"abc\"", 3, &j, &e), MTC_EINPUT);
}

static void test_json_error_names_the_byte(void **st)
{
    (void)st;
    mtc_json j;
    mtc_err e = {0};
    assert_int_equal(parse("{\"a\": [1, 2, }", &j, &e), MTC_EINPUT);
    assert_string_equal(e.msg, "unexpected character at byte 13");
    assert_int_equal(parse("[1] x", &j, &e), MTC_EINPUT);
    assert_string_equal(e.msg, "trailing characters at byte 4");
}

static void test_json_random_garbage_never_crashes(void **st)
{
    (void)st;
    const char *seed_doc = "{\"a\":[1,2.5,-3e2,{\"b\":\"c\\u00e9\\n\"}],\"d\":true,\"e\":null}";
    size_t n = strlen(seed_doc);
    char buf[128];
    mtc_rng r;
    mtc_rng_seed(&r, 11);
    int ok = 0;
    for (int it = 0; it < 5000; it++) {
        memcpy(buf, seed_doc, n);
        int flips = 1 + (int)mtc_rng_below(&r, 3);
        for (int k = 0; k < flips; k++)
            buf[mtc_rng_below(&r, n)] = "{}[]\",:\\u0e-.a \x01\xff"[mtc_rng_below(&r, 17)];
        size_t len = mtc_rng_below(&r, n + 1);
        mtc_json j;
        mtc_err e = {0};
        if (mtc_json_parse(buf, len, &j, &e) == 0) {
            ok++;
            mtc_json_free(&j);
        } else {
            assert_non_null(strstr(e.msg, " at byte "));
        }
    }
    assert_true(ok < 5000);
}

static void test_json_pretty_print_parses_back(void **st)
{
    (void)st;
    const char *src = "{\"a\":[1,2,3],\"b\":{\"c\":[{\"d\":\"x\\ny\"}],\"e\":{}},\"f\":[]}";
    mtc_json a, b;
    assert_int_equal(parse(src, &a, NULL), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    mtc_json_fprint(f, &a, 2);
    fclose(f);
    assert_non_null(strstr(buf, "\n  \"a\": [1, 2, 3],\n"));
    assert_int_equal(mtc_json_parse(buf, len, &b, NULL), 0);
    assert_true(json_equal(&a, &b));
    free(buf);
    mtc_json_free(&a);
    mtc_json_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_parse_then_print_round_trips),
        cmocka_unit_test(test_json_writer_commas_and_numbers),
        cmocka_unit_test(test_json_string_escapes_both_ways),
        cmocka_unit_test(test_json_deep_nesting_rejected),
        cmocka_unit_test(test_json_malformed_inputs_each_give_an_error),
        cmocka_unit_test(test_json_error_names_the_byte),
        cmocka_unit_test(test_json_random_garbage_never_crashes),
        cmocka_unit_test(test_json_pretty_print_parses_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
