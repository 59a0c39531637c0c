#!/usr/bin/env bash
# The streaming-database use case: a SQLite database lives in a remote
# backend served by r3map serve, is mounted through FUSE with no background
# pull, and is queried with the sqlite3 command.  Answers match the same
# queries on the original file, a point query pulls only a small part of
# the database (counted in chunks), and a change made through the mount
# reaches the database on the server's side.
. "$(dirname "$0")/fuse-lib.sh"
need sqlite3

db=$tmp/orig.db
sqlite3 "$db" "PRAGMA page_size=4096;
  CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, val REAL, pad TEXT);
  WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 300000)
  INSERT INTO t SELECT i, 'name-' || (i * 7919 % 300000), (i % 1000) / 10.0,
                       hex(randomblob(64)) FROM c;
  CREATE INDEX t_name ON t(name);
  CREATE TABLE spare(x);
  INSERT INTO spare SELECT zeroblob(4000) FROM t LIMIT 256;
  DROP TABLE spare;"
# The file cannot grow through the mount (a region has a fixed size): the
# dropped table leaves 1 MiB of free pages for the update below to use.
size=$(stat -c %s "$db")

point="SELECT name, val FROM t WHERE id = 123457;"
byname="SELECT id FROM t WHERE name = 'name-4242';"
scan="SELECT count(*), sum(val), max(length(pad)) FROM t WHERE val > 50;"
for q in point byname scan; do
  sqlite3 "$db" "${!q}" >"$tmp/want-$q" || die "query $q on the original"
done

serve --listen "nbd+unix:///?socket=$tmp/s" --export "db=file:$db"
uri=$(sock_uri "$tmp/s" db)

# No background pull: every chunk that arrives was asked for.
fuse_mount --pull-workers 0 --name db.sqlite "$uri"
[ "$(stat -c %s "$file")" = "$size" ] || die "size differs"
sqlite3 -readonly "$file" "$point" >"$tmp/got-point" || die "point query"
cmp -s "$tmp/want-point" "$tmp/got-point" \
  || die "point query: $(cat "$tmp/got-point") != $(cat "$tmp/want-point")"
fuse_unmount || die "unmount status $?"
chunks=$(summary_field chunks)
pulled=$(summary_field demand)
echo "point query pulled $pulled of $chunks chunks"
[ "$(summary_field background)" = 0 ] || die "background pull ran"
[ "$pulled" -ge 1 ] || die "nothing was pulled"
# A B-tree lookup reads a handful of pages; the kernel's read-ahead adds up
# to 1 MiB.  Well under a tenth of the database either way.
[ $((pulled * 10)) -lt "$chunks" ] || die "pulled $pulled of $chunks chunks"

# Every answer right, the scan pulling (nearly) everything.
fuse_mount --pull-workers 0 --name db.sqlite "$uri"
for q in point byname scan; do
  sqlite3 -readonly "$file" "${!q}" >"$tmp/got-$q" || die "query $q"
  cmp -s "$tmp/want-$q" "$tmp/got-$q" || die "query $q differs"
done
# A change through the mount (journal in memory: the mount holds only the
# database file), pushed to the server at unmount.
sqlite3 "$file" "PRAGMA journal_mode=MEMORY;
  UPDATE t SET name = 'changed' WHERE id = 77;" >/dev/null || die "update"
fuse_unmount || die "unmount after update: status $?"
[ "$(summary_field pushed)" -ge 1 ] || die "nothing pushed"
[ "$(sqlite3 "$db" "SELECT name FROM t WHERE id = 77")" = changed ] \
  || die "the server's database lacks the update"
[ "$(sqlite3 "$db" "PRAGMA integrity_check")" = ok ] || die "integrity_check"
echo PASS
