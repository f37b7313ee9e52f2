/*
 * mtc/json.h — a small JSON DOM parser and an append-only writer
 * (core/json.c). Used for checkpoint metadata, reports and `--json` output.
 * The parser bounds nesting depth and never trusts lengths it has not read.
 */
#ifndef MTC_JSON_H
#define MTC_JSON_H

typedef enum {
    MTC_JNULL, MTC_JBOOL, MTC_JNUM, MTC_JSTR, MTC_JARR, MTC_JOBJ
} mtc_jtype;
typedef struct mtc_json {
    mtc_jtype type;
    double num;          /* JNUM, JBOOL (0/1) */
    char *str;           /* JSTR */
    int n;               /* JARR/JOBJ element count */
    char **keys;         /* JOBJ */
    struct mtc_json *items; /* JARR/JOBJ elements */
} mtc_json;
/* Parses text[0..len). On error e says "<what> at byte N". */
int mtc_json_parse(const char *text, size_t len, mtc_json *out, mtc_err *e);
void mtc_json_free(mtc_json *j);
const mtc_json *mtc_json_get(const mtc_json *obj, const char *key); /* or NULL */
double mtc_json_num(const mtc_json *obj, const char *key, double dflt);
const char *mtc_json_str(const mtc_json *obj, const char *key); /* or NULL */

/* Writer: builds text in a growing buffer; commas are inserted for you. */
typedef struct mtc_jw {
    char *buf;
    size_t len, cap;
    int depth;
    int first[64]; /* per depth: no element written yet */
    int after_key;
    int oom;
} mtc_jw;
void mtc_jw_init(mtc_jw *w);
void mtc_jw_free(mtc_jw *w);
void mtc_jw_obj(mtc_jw *w);      /* { */
void mtc_jw_obj_end(mtc_jw *w);  /* } */
void mtc_jw_arr(mtc_jw *w);      /* [ */
void mtc_jw_arr_end(mtc_jw *w);  /* ] */
void mtc_jw_key(mtc_jw *w, const char *k);
void mtc_jw_str(mtc_jw *w, const char *s);
void mtc_jw_num(mtc_jw *w, double v); /* %.17g, or null when not finite */
void mtc_jw_int(mtc_jw *w, int64_t v);
void mtc_jw_bool(mtc_jw *w, int v);
void mtc_jw_null(mtc_jw *w);
void mtc_jw_raw(mtc_jw *w, const char *json); /* a pre-built JSON value */
/* key + value shorthands */
void mtc_jw_kstr(mtc_jw *w, const char *k, const char *s);
void mtc_jw_knum(mtc_jw *w, const char *k, double v);
void mtc_jw_kint(mtc_jw *w, const char *k, int64_t v);
/* Writes a parsed value (e.g. to re-emit checkpoint metadata). */
void mtc_jw_value(mtc_jw *w, const mtc_json *v);
/* Pretty-prints v to f with `indent` spaces per level, then a newline. */
void mtc_json_fprint(FILE *f, const mtc_json *v, int indent);

#endif
