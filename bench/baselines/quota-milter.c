/*
 * quota-milter.c: the benchmark's C baseline. The same Maildir++ quota policy as
 * bench/ts-quota-milter.ts, written on Sendmail's libmilter.
 *
 * Policy: for every recipient, read <root>/<local part>/maildirsize and answer
 * "452 4.2.2 Mailbox over quota" (tempfail) when one more 1-byte message would exceed the
 * byte limit or the message-count limit; continue otherwise, and whenever the answer is
 * unknown (no such mailbox name, unreadable or suspicious file).
 *
 * Only xxfi_envrcpt is registered. libmilter's listener (mi_listener) sets SMFIP_NOCONNECT,
 * NOHELO, NOMAIL, NOHDRS, NOEOH, NOBODY, NODATA and NOUNKNOWN for every callback left NULL,
 * and with no xxfi_negotiate callback st_optionneg passes those flags to the MTA unchanged.
 * So the MTA sends only RCPT and end of message (which cannot be skipped), exactly like the
 * TypeScript server, which has a single `rcpt` method.
 *
 * The file is read with plain blocking syscalls in libmilter's per-connection thread
 * (open, one read of at most 5121 bytes, close): the cheapest correct way in C.
 *
 * usage: quota-milter-c PORT MAILDIR_ROOT     (listens on 127.0.0.1 only)
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

/* Courier and Dovecot read at most 5120 bytes; a full buffer means "recalculate". */
#define RECALC_SIZE 5120
#define MAX_READ (RECALC_SIZE + 1)
#define MAX_LOCAL 64
#define MAX_DIGITS 16

enum verdict { VERDICT_OK, VERDICT_OVER, VERDICT_UNKNOWN };

static const char *maildir_root;

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* Reads an unsigned (or, when allowed, '-'-prefixed) decimal of 1..16 digits. */
static int parse_number(const char **at, const char *end, long long *out, int allow_negative) {
  const char *p = *at;
  int negative = 0;
  int digits = 0;
  long long value = 0;
  if (allow_negative && p < end && *p == '-') {
    negative = 1;
    p++;
  }
  while (p < end && *p >= '0' && *p <= '9') {
    if (++digits > MAX_DIGITS) return 0;
    value = value * 10 + (*p - '0');
    p++;
  }
  if (digits == 0) return 0;
  *out = negative ? -value : value;
  *at = p;
  return 1;
}

/* Line 1: comma-separated items "<n>S" / "<n>C", blanks around items allowed, others ignored. */
static int parse_header(const char *p, const char *end, long long *size_limit, long long *count_limit) {
  int found = 0;
  while (p <= end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *item_end = comma != NULL ? comma : end;
    const char *a = p;
    const char *b = item_end;
    while (a < b && is_blank(*a)) a++;
    while (b > a && is_blank(b[-1])) b--;
    if (b - a >= 2 && (b[-1] == 'S' || b[-1] == 'C')) {
      const char *q = a;
      long long value;
      if (parse_number(&q, b - 1, &value, 0) && q == b - 1) {
        if (b[-1] == 'S') *size_limit = value;
        else *count_limit = value;
        found = 1;
      }
    }
    if (comma == NULL) break;
    p = comma + 1;
  }
  return found;
}

static enum verdict evaluate(const char *buf, size_t len) {
  if (len >= RECALC_SIZE) return VERDICT_UNKNOWN;
  if (memchr(buf, '\0', len) != NULL) return VERDICT_UNKNOWN;
  const char *end = buf + len;
  const char *newline = memchr(buf, '\n', len);
  long long size_limit = 0, count_limit = 0;
  if (!parse_header(buf, newline != NULL ? newline : end, &size_limit, &count_limit)) return VERDICT_OK;
  long long bytes = 0, count = 0;
  const char *p = newline != NULL ? newline + 1 : end;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL) break; /* a torn append: ignored, as Dovecot does */
    long long line_bytes, line_count;
    const char *q = p;
    while (q < eol && is_blank(*q)) q++;
    if (!parse_number(&q, eol, &line_bytes, 1)) return VERDICT_UNKNOWN;
    if (q >= eol || !is_blank(*q)) return VERDICT_UNKNOWN;
    while (q < eol && is_blank(*q)) q++;
    if (!parse_number(&q, eol, &line_count, 1)) return VERDICT_UNKNOWN;
    while (q < eol && is_blank(*q)) q++;
    if (q != eol) return VERDICT_UNKNOWN;
    bytes += line_bytes;
    count += line_count;
    p = eol + 1;
  }
  if (bytes < 0 || count < 0) return VERDICT_UNKNOWN;
  if (size_limit > 0 && bytes + 1 > size_limit) return VERDICT_OVER;
  if (count_limit > 0 && count + 1 > count_limit) return VERDICT_OVER;
  return VERDICT_OK;
}

/* "<User@Example.test>" -> "user"; refuses anything that could leave the maildir root. */
static int mailbox_of(const char *recipient, char local[MAX_LOCAL + 1]) {
  const char *start = recipient;
  size_t len = strlen(recipient);
  if (len > 0 && start[0] == '<') {
    start++;
    len--;
  }
  if (len > 0 && start[len - 1] == '>') len--;
  const char *at = NULL;
  for (size_t i = 0; i < len; i++)
    if (start[i] == '@') at = start + i;
  size_t local_len = at != NULL ? (size_t)(at - start) : len;
  if (local_len == 0 || local_len > MAX_LOCAL || start[0] == '.') return 0;
  for (size_t i = 0; i < local_len; i++) {
    char c = start[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) return 0;
    local[i] = c;
  }
  local[local_len] = '\0';
  return 1;
}

static sfsistat on_rcpt(SMFICTX *ctx, char **argv) {
  char local[MAX_LOCAL + 1];
  char path[PATH_MAX];
  char buf[MAX_READ];
  if (argv == NULL || argv[0] == NULL || !mailbox_of(argv[0], local)) return SMFIS_CONTINUE;
  int n = snprintf(path, sizeof path, "%s/%s/maildirsize", maildir_root, local);
  if (n < 0 || (size_t)n >= sizeof path) return SMFIS_CONTINUE;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return SMFIS_CONTINUE; /* ENOENT: no quota; anything else: unknown, never a refusal */
  ssize_t got = read(fd, buf, sizeof buf);
  (void)close(fd);
  if (got < 0 || evaluate(buf, (size_t)got) != VERDICT_OVER) return SMFIS_CONTINUE;
  (void)smfi_setreply(ctx, "452", "4.2.2", "Mailbox over quota");
  return SMFIS_TEMPFAIL;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s PORT MAILDIR_ROOT\n", argv[0]);
    return 2;
  }
  char *end = NULL;
  long port = strtol(argv[1], &end, 10);
  if (end == argv[1] || *end != '\0' || port < 1 || port > 65535) {
    fprintf(stderr, "bad port '%s'\n", argv[1]);
    return 2;
  }
  maildir_root = argv[2];
  static char conn[64];
  snprintf(conn, sizeof conn, "inet:%ld@127.0.0.1", port);

  struct smfiDesc desc;
  memset(&desc, 0, sizeof desc); /* every callback but envrcpt stays NULL */
  desc.xxfi_name = "bench-quota-c";
  desc.xxfi_version = SMFI_VERSION;
  desc.xxfi_flags = 0; /* no end-of-message actions */
  desc.xxfi_envrcpt = on_rcpt;

  if (smfi_setconn(conn) != MI_SUCCESS || smfi_setbacklog(1024) != MI_SUCCESS ||
      smfi_register(desc) != MI_SUCCESS) {
    fprintf(stderr, "libmilter setup failed\n");
    return 1;
  }
  if (smfi_opensocket(1) != MI_SUCCESS) {
    fprintf(stderr, "cannot listen on %s\n", conn);
    return 1;
  }
  printf("READY %ld\n", port);
  fflush(stdout);
  return smfi_main() == MI_SUCCESS ? 0 : 1;
}
