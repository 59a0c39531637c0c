/* The handle's alignment adapter and max_io split, over a test backend
 * that counts every call that breaks its declared alignment or max_io. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"
#include "testbe.h"

struct sweep_arg {
  uint32_t align;
  struct testbe *tb;
};

static struct r3m_backend *
open_fresh (uint64_t size, void *arg)
{
  struct sweep_arg *a = arg;
  struct testbe_opts o = { .size = size, .align = a->align };
  return testbe_new (&o, &a->tb);
}

static void
no_violations (struct r3m_backend *b, void *arg)
{
  struct sweep_arg *a = arg;
  assert_int_equal (atomic_load (&a->tb->violations), 0);
  assert_true (atomic_load (&a->tb->reads) > 0);
}

static void
run (uint32_t align, unsigned count)
{
  struct sweep_arg a = { align, NULL };
  sweep (open_fresh, no_violations, &a, (uint64_t) align * count);
}

static void test_sweep_align2_count16 (void **s) { run (2, 16); }
static void test_sweep_align2_count64 (void **s) { run (2, 64); }
static void test_sweep_align4_count16 (void **s) { run (4, 16); }
static void test_sweep_align4_count64 (void **s) { run (4, 64); }
static void test_sweep_align8_count16 (void **s) { run (8, 16); }
static void test_sweep_align8_count64 (void **s) { run (8, 64); }

/* A size that is not a multiple of align: the last block is short. */
static void
test_sweep_short_last_block (void **state)
{
  struct sweep_arg a = { 8, NULL };
  sweep (open_fresh, no_violations, &a, 8 * 16 + 5);
}

static void
test_max_io_splits (void **state)
{
  struct testbe *tb;
  struct testbe_opts o = { .size = 4096, .align = 4, .max_io = 16 };
  struct r3m_backend *b = testbe_new (&o, &tb);
  unsigned char buf[1000], back[1000];
  fill (buf, sizeof buf, 3, 30);
  assert_int_equal (r3m_backend_pwrite (b, buf, sizeof buf, 3, 0), 0);
  assert_int_equal (r3m_backend_pread (b, back, sizeof back, 3), 0);
  assert_memory_equal (buf, back, sizeof buf);
  assert_int_equal (atomic_load (&tb->violations), 0);
  /* 1000 bytes from 3: RMW of [0,4) and [1000,1004), 996 aligned bytes in
   * 16-byte pieces = 63 writes (62 full + one of 4) + 2 RMW writes. */
  assert_int_equal (atomic_load (&tb->writes), 63 + 2);
  /* Aligned I/O larger than max_io is split too. */
  atomic_store (&tb->reads, 0);
  assert_int_equal (r3m_backend_pread (b, back, 64, 0), 0);
  assert_int_equal (atomic_load (&tb->reads), 4);
  r3m_backend_close (b);
}

/* max_io alone (align 1) splits reads and writes only. */
static void
test_max_io_without_align (void **state)
{
  struct testbe *tb;
  struct testbe_opts o = { .size = 4096, .align = 1, .max_io = 100,
                           .zero_op = true };
  struct r3m_backend *b = testbe_new (&o, &tb);
  unsigned char buf[1000];
  fill (buf, sizeof buf, 0, 31);
  assert_int_equal (r3m_backend_pwrite (b, buf, 1000, 1, 0), 0);
  assert_int_equal (atomic_load (&tb->writes), 10);
  assert_int_equal (r3m_backend_zero (b, 1000, 1, 0), 0);
  assert_int_equal (atomic_load (&tb->zeros), 1);
  assert_int_equal (atomic_load (&tb->violations), 0);
  r3m_backend_close (b);
}

/* Zero without ops->zero: written as zeros, RMW at the edges. */
static void
test_zero_by_writing (void **state)
{
  struct testbe *tb;
  struct testbe_opts o = { .size = 1024, .align = 8, .max_io = 64 };
  struct r3m_backend *b = testbe_new (&o, &tb);
  unsigned char buf[1024], back[1024];
  fill (buf, sizeof buf, 0, 32);
  assert_int_equal (r3m_backend_pwrite (b, buf, sizeof buf, 0, 0), 0);
  assert_int_equal (r3m_backend_zero (b, 500, 3, 0), 0);
  assert_int_equal (r3m_backend_pread (b, back, sizeof back, 0), 0);
  assert_memory_equal (back, buf, 3);
  for (size_t i = 3; i < 503; i++)
    assert_int_equal (back[i], 0);
  assert_memory_equal (back + 503, buf + 503, sizeof buf - 503);
  assert_int_equal (atomic_load (&tb->violations), 0);
  r3m_backend_close (b);
}

/* With ops->zero: aligned middle through zero, edges by RMW. */
static void
test_zero_op_edges (void **state)
{
  struct testbe *tb;
  struct testbe_opts o = { .size = 1024, .align = 8, .zero_op = true };
  struct r3m_backend *b = testbe_new (&o, &tb);
  unsigned char buf[1024], back[1024];
  fill (buf, sizeof buf, 0, 33);
  assert_int_equal (r3m_backend_pwrite (b, buf, sizeof buf, 0, 0), 0);
  atomic_store (&tb->writes, 0);
  assert_int_equal (r3m_backend_zero (b, 100, 5, R3M_IO_MAY_TRIM), 0);
  assert_int_equal (atomic_load (&tb->zeros), 1);
  assert_int_equal (atomic_load (&tb->writes), 2);
  assert_int_equal (r3m_backend_pread (b, back, sizeof back, 0), 0);
  assert_memory_equal (back, buf, 5);
  for (size_t i = 5; i < 105; i++)
    assert_int_equal (back[i], 0);
  assert_memory_equal (back + 105, buf + 105, sizeof buf - 105);
  /* Inside one block: one RMW, no zero call. */
  assert_int_equal (r3m_backend_zero (b, 2, 201, 0), 0);
  assert_int_equal (atomic_load (&tb->zeros), 1);
  assert_int_equal (atomic_load (&tb->violations), 0);
  r3m_backend_close (b);
}

/* Trim is advisory: only the whole blocks inside the range are trimmed. */
static void
test_trim_drops_edges (void **state)
{
  struct testbe *tb;
  struct testbe_opts o = { .size = 1024, .align = 16 };
  struct r3m_backend *b = testbe_new (&o, &tb);
  assert_int_equal (r3m_backend_trim (b, 10, 3), 0);      /* no whole block */
  assert_int_equal (atomic_load (&tb->trims), 0);
  assert_int_equal (r3m_backend_trim (b, 40, 3), 0);      /* [16, 32) */
  assert_int_equal (atomic_load (&tb->trims), 1);
  assert_int_equal (r3m_backend_trim (b, 1024, 0), 0);
  assert_int_equal (atomic_load (&tb->trims), 2);
  assert_int_equal (atomic_load (&tb->violations), 0);
  assert_int_equal (atomic_load (&tb->writes), 0);
  r3m_backend_close (b);
}

/* FUA reaches the RMW writes. */
static void
test_fua_flags_pass (void **state)
{
  struct testbe *tb;
  struct testbe_opts o = { .size = 64, .align = 8 };
  struct r3m_backend *b = testbe_new (&o, &tb);
  char c = 1;
  assert_int_equal (r3m_backend_pwrite (b, &c, 1, 3, R3M_IO_FUA), 0);
  assert_int_equal (atomic_load (&tb->violations), 0);
  r3m_backend_close (b);
}

/* A native submit gets aligned requests; others go through the pool. */
static void
test_submit_routing (void **state)
{
  struct testbe *tb;
  struct testbe_opts o = { .size = 4096, .align = 512, .max_io = 1024,
                           .native_submit = true };
  struct r3m_backend *b = testbe_new (&o, &tb);
  static unsigned char buf[2048], back[2048];
  fill (buf, sizeof buf, 100, 34);
  assert_int_equal (submit_wait (b, R3M_IO_WRITE, buf, 1024, 512), 0);
  assert_int_equal (atomic_load (&tb->native_submits), 1);
  assert_int_equal (submit_wait (b, R3M_IO_WRITE, buf, 100, 100), 0);
  assert_int_equal (submit_wait (b, R3M_IO_READ, back, 2048, 0), 0);
  assert_int_equal (atomic_load (&tb->native_submits), 1);
  assert_memory_equal (back + 100, buf, 100);
  assert_memory_equal (back + 512, buf, 412);
  assert_int_equal (submit_wait (b, R3M_IO_FLUSH, NULL, 0, 0), 0);
  assert_int_equal (atomic_load (&tb->native_submits), 2);
  assert_int_equal (atomic_load (&tb->violations), 0);
  r3m_backend_close (b);
}

static int
never_pread (void *self, void *buf, size_t len, uint64_t off)
{
  return -EIO;
}

static int
never_pwrite (void *self, const void *buf, size_t len, uint64_t off,
              unsigned flags)
{
  return -EIO;
}

static void
test_new_validates_info (void **state)
{
  static const struct r3m_backend_ops ops = {
    .pread = never_pread, .pwrite = never_pwrite,
  };
  struct r3m_backend *b = NULL;
  struct r3m_error err = { 0 };
  struct r3m_backend_info i = { .size = 100, .align = 3 };
  assert_int_equal (r3m_backend_new (&ops, NULL, &i, "x", &b, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "align 3 is not a power of two"));
  i.align = 0;
  assert_int_equal (r3m_backend_new (&ops, NULL, &i, "x", &b, &err), -EINVAL);
  i.align = 1u << 31;
  assert_int_equal (r3m_backend_new (&ops, NULL, &i, "x", &b, &err), -EINVAL);
  i.align = 512;
  i.max_io = 1000;
  assert_int_equal (r3m_backend_new (&ops, NULL, &i, "x", &b, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "max_io 1000 is not a multiple"));
  assert_null (b);
  struct r3m_backend_ops no_write = { .pread = ops.pread };
  i.max_io = 0;
  assert_int_equal (r3m_backend_new (&no_write, NULL, &i, "x", &b, &err),
                    -EINVAL);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_sweep_align2_count16),
    cmocka_unit_test (test_sweep_align2_count64),
    cmocka_unit_test (test_sweep_align4_count16),
    cmocka_unit_test (test_sweep_align4_count64),
    cmocka_unit_test (test_sweep_align8_count16),
    cmocka_unit_test (test_sweep_align8_count64),
    cmocka_unit_test (test_sweep_short_last_block),
    cmocka_unit_test (test_max_io_splits),
    cmocka_unit_test (test_max_io_without_align),
    cmocka_unit_test (test_zero_by_writing),
    cmocka_unit_test (test_zero_op_edges),
    cmocka_unit_test (test_trim_drops_edges),
    cmocka_unit_test (test_fua_flags_pass),
    cmocka_unit_test (test_submit_routing),
    cmocka_unit_test (test_new_validates_info),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
