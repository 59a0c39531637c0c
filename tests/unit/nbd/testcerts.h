/* Test certificates made with OpenSSL at test time, so that no key is ever
 * committed and nothing expires in the tree.
 *
 * testcerts_make (dir) writes into dir:
 *   ca.pem, ca-key.pem           a CA
 *   server.pem, server-key.pem   CN=localhost, SAN DNS:localhost,
 *                                IP:127.0.0.1, IP:::1, signed by the CA
 *   client.pem, client-key.pem   CN=r3map-test-client, signed by the CA
 *   other-ca.pem                 an unrelated CA (for "wrong CA" tests)
 *   other-client.pem, other-client-key.pem   signed by the other CA
 * Returns 0 or -1. */
#ifndef R3M_TEST_TESTCERTS_H
#define R3M_TEST_TESTCERTS_H

int testcerts_make (const char *dir);

#endif
