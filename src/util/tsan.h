/* ThreadSanitizer annotations, empty in other builds.
 *
 * Region reads and writes of the same bytes may overlap: a reader holds
 * only a reader count on a LOCAL chunk, which keeps the chunk from being
 * invalidated, not from being written, so a read concurrent with a write
 * returns old bytes, new bytes or a mix of the two, as a file would
 * (docs/engine.md, "Semantics worth knowing").  The copies out of the
 * cache's memory are therefore reads TSan must not pair with those
 * writes; everything else in the same code stays checked. */
#ifndef R3M_UTIL_TSAN_H
#define R3M_UTIL_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define UTIL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UTIL_TSAN 1
#endif
#endif

#ifdef UTIL_TSAN
/* From the TSan runtime (dynamic annotations). */
void AnnotateIgnoreReadsBegin (const char *file, int line);
void AnnotateIgnoreReadsEnd (const char *file, int line);
#define UTIL_TSAN_IGNORE_READS_BEGIN() AnnotateIgnoreReadsBegin (__FILE__, __LINE__)
#define UTIL_TSAN_IGNORE_READS_END() AnnotateIgnoreReadsEnd (__FILE__, __LINE__)
#else
#define UTIL_TSAN_IGNORE_READS_BEGIN() ((void) 0)
#define UTIL_TSAN_IGNORE_READS_END() ((void) 0)
#endif

#endif
