/*
 * measure.h — the HSM's own cost per call, for kms-bench (--op hsm-calls).
 * kmsd never calls this, and does not link it.
 */
#ifndef KMS_HSM_MEASURE_H
#define KMS_HSM_MEASURE_H

#include <stddef.h>
#include <stdint.h>

#include "hsm/hsm.h"

enum { HSM_CALL_RANDOM, HSM_CALL_ENCRYPT_INIT, HSM_CALL_ENCRYPT,
    HSM_NCALLS };

/*
 * count GenerateDataKeys as kmsd makes them — C_GenerateRandom (32-byte
 * data key ‖ IV), C_EncryptInit (AES-GCM, 21 bytes of AAD), C_Encrypt —
 * each call timed on its own and its seconds added to sum[HSM_CALL_*].
 * The keys are nkeys sensitive, non-extractable AES-256 session objects
 * made for the call, used uniformly and destroyed before it returns:
 * private ones as kmsd holds its keys, or public ones (private == 0), to
 * show what custody costs in a module that keeps a private object's value
 * encrypted under its token key (SoftHSM2 decrypts it on every
 * C_EncryptInit).
 */
int hsm_measure_gdk_calls(hsm_session *s, int private, size_t nkeys,
    uint64_t count, double sum[HSM_NCALLS]);

#endif
