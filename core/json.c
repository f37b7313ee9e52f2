/*
 * json.c — a small JSON DOM parser and an append-only writer.
 *
 * The parser is strict RFC 8259 (no comments, no trailing commas), bounds
 * nesting at JSON_MAX_DEPTH, turns \uXXXX (with surrogate pairs) into UTF-8,
 * rejects NUL in strings (values are C strings) and reports errors as
 * "<what> at byte N". Numbers are checked against the JSON grammar and then
 * converted by strtod on a bounded, NUL-terminated copy.
 *
 * The writer appends to a growing buffer and inserts commas itself; numbers
 * use the shortest of %.9g / %.15g / %.16g / %.17g that round-trips, and
 * non-finite numbers become null. It is not a pretty printer: see
 * mtc_json_fprint for that.
 */
#include "mtc.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64
#define JSON_NUM_MAX 128 /* longest number token we convert */

/* ---- parser ------------------------------------------------------------- */
typedef struct {
    const char *s;
    size_t len, pos;
    mtc_err *e;
} jp;

static int jp_fail(jp *p, const char *what)
{
    return mtc_err_set(p->e, MTC_EINPUT, "%s at byte %zu", what, p->pos);
}

static void jp_ws(jp *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int jp_peek(const jp *p) { return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1; }

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* p->pos is at the opening quote. The decoded string is never longer than
 * its escaped form, so one allocation of the raw span suffices. */
static int jp_string(jp *p, char **out)
{
    size_t start = ++p->pos, end = start;
    while (end < p->len && p->s[end] != '"') end += (p->s[end] == '\\') ? 2 : 1;
    if (end >= p->len) { p->pos = p->len; return jp_fail(p, "unterminated string"); }
    char *o = malloc(end - start + 1);
    if (!o) return mtc_err_set(p->e, MTC_ENOMEM, "out of memory at byte %zu", p->pos);
    size_t n = 0;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) { free(o); return jp_fail(p, "control character in string"); }
        if (c != '\\') { o[n++] = (char)c; p->pos++; continue; }
        char x = p->s[p->pos + 1];
        const char *simple = strchr("\"\\/bfnrt", x);
        if (x && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            o[n++] = map[simple - "\"\\/bfnrt"];
            p->pos += 2;
            continue;
        }
        unsigned cp, lo;
        if (x != 'u' || p->pos + 6 > end || hex4(p->s + p->pos + 2, &cp)) {
            free(o);
            return jp_fail(p, "invalid escape in string");
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) { /* high surrogate: needs a low one */
            if (p->pos + 12 > end || p->s[p->pos + 6] != '\\' || p->s[p->pos + 7] != 'u' ||
                hex4(p->s + p->pos + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                free(o);
                return jp_fail(p, "unpaired surrogate in \\u escape");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p->pos += 6;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            free(o);
            return jp_fail(p, "unpaired surrogate in \\u escape");
        } else if (cp == 0) {
            free(o);
            return jp_fail(p, "NUL character in string");
        }
        n += utf8_put(o + n, cp);
        p->pos += 6;
    }
    o[n] = 0;
    p->pos = end + 1;
    *out = o;
    return MTC_OK;
}

static int jp_number(jp *p, double *out)
{
    size_t s = p->pos, i = s;
    const char *t = p->s;
#define DIGIT(k) ((k) < p->len && t[k] >= '0' && t[k] <= '9')
    if (i < p->len && t[i] == '-') i++;
    if (!DIGIT(i)) { p->pos = i; return jp_fail(p, "invalid number"); }
    if (t[i] == '0') i++;
    else while (DIGIT(i)) i++;
    if (i < p->len && t[i] == '.') {
        i++;
        if (!DIGIT(i)) { p->pos = i; return jp_fail(p, "invalid number"); }
        while (DIGIT(i)) i++;
    }
    if (i < p->len && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < p->len && (t[i] == '+' || t[i] == '-')) i++;
        if (!DIGIT(i)) { p->pos = i; return jp_fail(p, "invalid number"); }
        while (DIGIT(i)) i++;
    }
#undef DIGIT
    if (i - s >= JSON_NUM_MAX) return jp_fail(p, "number too long");
    char buf[JSON_NUM_MAX];
    memcpy(buf, t + s, i - s);
    buf[i - s] = 0;
    double v = strtod(buf, NULL);
    if (!isfinite(v)) return jp_fail(p, "number out of range");
    *out = v;
    p->pos = i;
    return MTC_OK;
}

static int jp_value(jp *p, mtc_json *v, int depth);

/* Shared by arrays and objects: p->pos is just past the bracket. */
static int jp_container(jp *p, mtc_json *v, int depth, int is_obj)
{
    char close = is_obj ? '}' : ']';
    int cap = 0, rc;
    v->type = is_obj ? MTC_JOBJ : MTC_JARR;
    jp_ws(p);
    if (jp_peek(p) == close) { p->pos++; return MTC_OK; }
    for (;;) {
        if (v->n == cap) {
            int nc = cap ? cap * 2 : 4;
            mtc_json *ni = realloc(v->items, (size_t)nc * sizeof *ni);
            if (!ni) return mtc_err_set(p->e, MTC_ENOMEM, "out of memory at byte %zu", p->pos);
            v->items = ni;
            if (is_obj) {
                char **nk = realloc(v->keys, (size_t)nc * sizeof *nk);
                if (!nk) return mtc_err_set(p->e, MTC_ENOMEM, "out of memory at byte %zu", p->pos);
                v->keys = nk;
            }
            cap = nc;
        }
        jp_ws(p);
        if (is_obj) {
            if (jp_peek(p) != '"') return jp_fail(p, "expected string key");
            char *k;
            if ((rc = jp_string(p, &k))) return rc;
            v->keys[v->n] = k;
            jp_ws(p);
            if (jp_peek(p) != ':') {
                memset(&v->items[v->n], 0, sizeof v->items[0]);
                v->n++;
                return jp_fail(p, "expected ':'");
            }
            p->pos++;
        }
        memset(&v->items[v->n], 0, sizeof v->items[0]);
        v->n++; /* counted now so a failure below frees what was built */
        if ((rc = jp_value(p, &v->items[v->n - 1], depth + 1))) return rc;
        jp_ws(p);
        int c = jp_peek(p);
        if (c == ',') { p->pos++; continue; }
        if (c == close) { p->pos++; return MTC_OK; }
        return jp_fail(p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int jp_literal(jp *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n)) return jp_fail(p, "invalid literal");
    p->pos += n;
    return MTC_OK;
}

static int jp_value(jp *p, mtc_json *v, int depth)
{
    memset(v, 0, sizeof *v);
    jp_ws(p);
    int c = jp_peek(p);
    switch (c) {
    case -1: return jp_fail(p, "unexpected end of input");
    case '{':
    case '[':
        if (depth >= JSON_MAX_DEPTH) return jp_fail(p, "nesting too deep");
        p->pos++;
        return jp_container(p, v, depth, c == '{');
    case '"': v->type = MTC_JSTR; return jp_string(p, &v->str);
    case 't': v->type = MTC_JBOOL; v->num = 1; return jp_literal(p, "true");
    case 'f': v->type = MTC_JBOOL; return jp_literal(p, "false");
    case 'n': v->type = MTC_JNULL; return jp_literal(p, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            v->type = MTC_JNUM;
            return jp_number(p, &v->num);
        }
        return jp_fail(p, "unexpected character");
    }
}

int mtc_json_parse(const char *text, size_t len, mtc_json *out, mtc_err *e)
{
    jp p = {text, len, 0, e};
    int rc = jp_value(&p, out, 0);
    if (!rc) {
        jp_ws(&p);
        if (p.pos != len) rc = jp_fail(&p, "trailing characters");
    }
    if (rc) {
        mtc_json_free(out);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

void mtc_json_free(mtc_json *j)
{
    if (!j) return;
    for (int i = 0; i < j->n; i++) {
        if (j->keys) free(j->keys[i]);
        mtc_json_free(&j->items[i]);
    }
    free(j->keys);
    free(j->items);
    free(j->str);
    memset(j, 0, sizeof *j);
}

const mtc_json *mtc_json_get(const mtc_json *obj, const char *key)
{
    if (!obj || obj->type != MTC_JOBJ) return NULL;
    for (int i = 0; i < obj->n; i++)
        if (!strcmp(obj->keys[i], key)) return &obj->items[i];
    return NULL;
}

double mtc_json_num(const mtc_json *obj, const char *key, double dflt)
{
    const mtc_json *v = mtc_json_get(obj, key);
    return v && v->type == MTC_JNUM ? v->num : dflt;
}

const char *mtc_json_str(const mtc_json *obj, const char *key)
{
    const mtc_json *v = mtc_json_get(obj, key);
    return v && v->type == MTC_JSTR ? v->str : NULL;
}

/* ---- writer ------------------------------------------------------------- */
void mtc_jw_init(mtc_jw *w)
{
    memset(w, 0, sizeof *w);
    w->first[0] = 1;
}

void mtc_jw_free(mtc_jw *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
}

static void jw_put(mtc_jw *w, const char *s, size_t n)
{
    if (w->oom) return;
    if (w->len + n + 1 > w->cap) {
        size_t nc = w->cap ? w->cap : 256;
        while (nc < w->len + n + 1) nc *= 2;
        char *nb = realloc(w->buf, nc);
        if (!nb) { w->oom = 1; return; }
        w->buf = nb;
        w->cap = nc;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = 0;
}

static void jw_puts(mtc_jw *w, const char *s) { jw_put(w, s, strlen(s)); }

/* Called before every value and key: the comma, unless first or after a key. */
static void jw_sep(mtc_jw *w)
{
    if (w->after_key) { w->after_key = 0; return; }
    if (!w->first[w->depth]) jw_put(w, ",", 1);
    w->first[w->depth] = 0;
}

static void jw_open(mtc_jw *w, char c)
{
    jw_sep(w);
    jw_put(w, &c, 1);
    if (w->depth + 1 >= (int)(sizeof w->first / sizeof w->first[0])) { w->oom = 1; return; }
    w->first[++w->depth] = 1;
}

static void jw_close(mtc_jw *w, char c)
{
    if (w->depth > 0) w->depth--;
    w->after_key = 0;
    jw_put(w, &c, 1);
}

void mtc_jw_obj(mtc_jw *w) { jw_open(w, '{'); }
void mtc_jw_obj_end(mtc_jw *w) { jw_close(w, '}'); }
void mtc_jw_arr(mtc_jw *w) { jw_open(w, '['); }
void mtc_jw_arr_end(mtc_jw *w) { jw_close(w, ']'); }

static void jw_quoted(mtc_jw *w, const char *s)
{
    jw_put(w, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        jw_put(w, run, (size_t)(s - run));
        char esc[8];
        switch (c) {
        case '"': jw_puts(w, "\\\""); break;
        case '\\': jw_puts(w, "\\\\"); break;
        case '\b': jw_puts(w, "\\b"); break;
        case '\f': jw_puts(w, "\\f"); break;
        case '\n': jw_puts(w, "\\n"); break;
        case '\r': jw_puts(w, "\\r"); break;
        case '\t': jw_puts(w, "\\t"); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            jw_puts(w, esc);
        }
        run = s + 1;
    }
    jw_put(w, run, (size_t)(s - run));
    jw_put(w, "\"", 1);
}

void mtc_jw_key(mtc_jw *w, const char *k)
{
    jw_sep(w);
    jw_quoted(w, k ? k : "");
    jw_put(w, ":", 1);
    w->after_key = 1;
}

void mtc_jw_str(mtc_jw *w, const char *s)
{
    jw_sep(w);
    if (s) jw_quoted(w, s);
    else jw_puts(w, "null");
}

/* Shortest of a few precisions that reads back to the same double. */
static void fmt_num(char *buf, size_t n, double v)
{
    static const int prec[] = {9, 15, 16, 17};
    for (size_t i = 0; i < sizeof prec / sizeof prec[0]; i++) {
        snprintf(buf, n, "%.*g", prec[i], v);
        if (strtod(buf, NULL) == v) return;
    }
}

void mtc_jw_num(mtc_jw *w, double v)
{
    jw_sep(w);
    if (!isfinite(v)) { jw_puts(w, "null"); return; }
    char buf[40];
    fmt_num(buf, sizeof buf, v);
    jw_puts(w, buf);
}

void mtc_jw_int(mtc_jw *w, int64_t v)
{
    char buf[32];
    jw_sep(w);
    snprintf(buf, sizeof buf, "%" PRId64, v);
    jw_puts(w, buf);
}

void mtc_jw_bool(mtc_jw *w, int v)
{
    jw_sep(w);
    jw_puts(w, v ? "true" : "false");
}

void mtc_jw_null(mtc_jw *w)
{
    jw_sep(w);
    jw_puts(w, "null");
}

void mtc_jw_raw(mtc_jw *w, const char *json)
{
    jw_sep(w);
    jw_puts(w, json ? json : "null");
}

void mtc_jw_kstr(mtc_jw *w, const char *k, const char *s) { mtc_jw_key(w, k); mtc_jw_str(w, s); }
void mtc_jw_knum(mtc_jw *w, const char *k, double v) { mtc_jw_key(w, k); mtc_jw_num(w, v); }
void mtc_jw_kint(mtc_jw *w, const char *k, int64_t v) { mtc_jw_key(w, k); mtc_jw_int(w, v); }

void mtc_jw_value(mtc_jw *w, const mtc_json *v)
{
    switch (v->type) {
    case MTC_JNULL: mtc_jw_null(w); break;
    case MTC_JBOOL: mtc_jw_bool(w, v->num != 0); break;
    case MTC_JNUM: mtc_jw_num(w, v->num); break;
    case MTC_JSTR: mtc_jw_str(w, v->str); break;
    case MTC_JARR:
    case MTC_JOBJ:
        jw_open(w, v->type == MTC_JOBJ ? '{' : '[');
        for (int i = 0; i < v->n; i++) {
            if (v->type == MTC_JOBJ) mtc_jw_key(w, v->keys[i]);
            mtc_jw_value(w, &v->items[i]);
        }
        jw_close(w, v->type == MTC_JOBJ ? '}' : ']');
        break;
    }
}

/* ---- pretty printer ------------------------------------------------------ */
static void fprint_scalar(FILE *f, const mtc_json *v)
{
    mtc_jw w;
    mtc_jw_init(&w);
    mtc_jw_value(&w, v);
    if (w.buf) fputs(w.buf, f);
    mtc_jw_free(&w);
}

static void fprint_key(FILE *f, const char *k)
{
    mtc_jw w;
    mtc_jw_init(&w);
    mtc_jw_str(&w, k);
    if (w.buf) fputs(w.buf, f);
    mtc_jw_free(&w);
}

static void fprint_rec(FILE *f, const mtc_json *v, int indent, int level)
{
    if ((v->type != MTC_JARR && v->type != MTC_JOBJ) || v->n == 0) {
        if (v->type == MTC_JARR) fputs("[]", f);
        else if (v->type == MTC_JOBJ) fputs("{}", f);
        else fprint_scalar(f, v);
        return;
    }
    int scalars = 1; /* short arrays of scalars stay on one line */
    for (int i = 0; i < v->n; i++)
        if (v->items[i].type == MTC_JARR || v->items[i].type == MTC_JOBJ) scalars = 0;
    if (v->type == MTC_JARR && scalars && v->n <= 16) {
        fputc('[', f);
        for (int i = 0; i < v->n; i++) {
            if (i) fputs(", ", f);
            fprint_scalar(f, &v->items[i]);
        }
        fputc(']', f);
        return;
    }
    fputc(v->type == MTC_JOBJ ? '{' : '[', f);
    for (int i = 0; i < v->n; i++) {
        fprintf(f, "%s\n%*s", i ? "," : "", indent * (level + 1), "");
        if (v->type == MTC_JOBJ) {
            fprint_key(f, v->keys[i]);
            fputs(": ", f);
        }
        fprint_rec(f, &v->items[i], indent, level + 1);
    }
    fprintf(f, "\n%*s%c", indent * level, "", v->type == MTC_JOBJ ? '}' : ']');
}

void mtc_json_fprint(FILE *f, const mtc_json *v, int indent)
{
    fprint_rec(f, v, indent, 0);
    fputc('\n', f);
}
