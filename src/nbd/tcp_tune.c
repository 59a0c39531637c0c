/* Socket options for NBD traffic over TCP.
 *
 * TCP_NODELAY everywhere: requests and replies are whole messages, and
 * Nagle would only hold the last one of a burst back.
 *
 * No pacing on loopback.  Where the host's congestion control is BBR (the
 * default on many distributions), every socket paces its packets with a
 * high-resolution timer.  Across a network that is the point of BBR; across
 * the loopback device there is no queue to protect, and the timers cost a
 * great deal on virtual machines, where each one is a trip through the
 * hypervisor.  On the 2-vCPU test machine the pacing timers of one
 * loopback connection fired 12,000 times a second and held sequential
 * 1 MiB reads at 4.6 GB/s; with cubic on the same connection: 0 timers
 * and 6.2 GB/s (docs/benchmarks.md).  So a connection whose two ends are
 * this host swaps BBR for cubic, or reno where unprivileged processes may
 * not choose cubic (reno is always allowed).  Any other algorithm the
 * administrator chose is left alone: none of the others paces. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <string.h>

#include "nbd/tcp_tune.h"

#define CC_NAME_MAX 16          /* the kernel's TCP_CA_NAME_MAX */

static bool
is_loopback (const struct sockaddr_storage *ss)
{
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *) ss;
    return (ntohl (in->sin_addr.s_addr) >> 24) == 127;
  }
  if (ss->ss_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *) ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK (a)
           || (IN6_IS_ADDR_V4MAPPED (a) && a->s6_addr[12] == 127);
  }
  return false;
}

/* Both ends on this host: the loopback range, or a connection to one of
 * the host's own addresses (which the kernel also routes through lo). */
static bool
same_host (const struct sockaddr_storage *local,
           const struct sockaddr_storage *peer)
{
  if (is_loopback (peer))
    return true;
  if (local->ss_family != peer->ss_family)
    return false;
  if (local->ss_family == AF_INET)
    return ((const struct sockaddr_in *) local)->sin_addr.s_addr
           == ((const struct sockaddr_in *) peer)->sin_addr.s_addr;
  if (local->ss_family == AF_INET6)
    return memcmp (&((const struct sockaddr_in6 *) local)->sin6_addr,
                   &((const struct sockaddr_in6 *) peer)->sin6_addr,
                   sizeof (struct in6_addr)) == 0;
  return false;
}

static void
avoid_pacing (int fd)
{
  char cc[CC_NAME_MAX] = "";
  socklen_t len = sizeof cc;
  if (getsockopt (fd, IPPROTO_TCP, TCP_CONGESTION, cc, &len) < 0
      || strncmp (cc, "bbr", 3) != 0)
    return;
  static const char *const calm[] = { "cubic", "reno" };
  for (size_t i = 0; i < sizeof calm / sizeof calm[0]; i++)
    if (setsockopt (fd, IPPROTO_TCP, TCP_CONGESTION, calm[i],
                    (socklen_t) strlen (calm[i])) == 0)
      return;
}

void
nbd_tcp_tune (int fd, const struct sockaddr_storage *local,
              const struct sockaddr_storage *peer)
{
  int one = 1;
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (same_host (local, peer))
    avoid_pacing (fd);
}
