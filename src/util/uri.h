/* URIs for backends and listen addresses.
 *
 *   scheme:opaque-path[?query]                memory:64M, file:/x?size=1G
 *   scheme://[user[:pass]@]host[:port][/path][?query]
 *                                             nbd://[::1]:10809/export
 *   scheme:///path?query                      nbd+unix:///export?socket=/s
 *
 * Path, user, password and query keys/values are percent-decoded; an encoded
 * NUL is refused.  Fragments ('#') are refused rather than ignored, since a
 * '#' in a file name is more likely than a fragment here. */
#ifndef R3M_UTIL_URI_H
#define R3M_UTIL_URI_H

#include <stdbool.h>
#include <stddef.h>

#include <r3map/error.h>

struct util_uri_param {
  char *key;
  char *value;                /* "" for a bare "key" */
};

struct util_uri {
  char *scheme;               /* lower-cased */
  bool has_authority;         /* "//" was present */
  char *user, *password;      /* NULL when absent */
  char *host;                 /* NULL when absent; no brackets for IPv6 */
  int port;                   /* -1 when absent */
  char *path;                 /* never NULL */
  struct util_uri_param *params;
  size_t nparams;
};

/* Parse s into u (which the caller frees with util_uri_free, also after a
 * failure).  0 or -EINVAL with a message saying what is wrong. */
int util_uri_parse (const char *s, struct util_uri *u, struct r3m_error *err);
void util_uri_free (struct util_uri *u);

/* A short, printable name for s in messages: s with control characters as
 * '?', cut to fit UTIL_URI_LABEL_MAX with "..." so that a long URI leaves
 * room in the message for what is wrong with it.  Returns buf.  Every
 * message about a URI should name it this way. */
#define UTIL_URI_LABEL_MAX 120
const char *util_uri_label (const char *s, char buf[UTIL_URI_LABEL_MAX]);

/* Value of query key, or NULL when absent. */
const char *util_uri_param (const struct util_uri *u, const char *key);

/* Fail with a message naming the first query key not in `allowed`
 * (NULL-terminated) or given twice: a typo must not be ignored silently.
 * The message starts with `what` (usually the URI), labelled as below. */
int util_uri_check_params (const struct util_uri *u,
                           const char *const *allowed, const char *what,
                           struct r3m_error *err);

#endif
