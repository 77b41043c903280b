// The AWS Encryption SDK for JavaScript (@aws-crypto/client-node) with its
// KMS keyring, its KMS client pointed at kmsd's HTTPS endpoint: messages
// the SDK writes for kmsctl decrypt-file to read, and messages kmsctl
// encrypt-file wrote for the SDK to read (called by
// tests/test_envelope_kms.c).
//
// Environment: KMSD_ENDPOINT (https://127.0.0.1:PORT), ADMIN_AKID and
// ADMIN_SECRET (a SigV4 access key of kmsd's), NODE_EXTRA_CA_CERTS (the
// server's certificate).
//
//   node esdk_kms.mjs encrypt KEY_ARN SUITE k=v,k=v IN:OUT ...
//   node esdk_kms.mjs decrypt KEY_ARN k=v,k=v IN:OUT ...
//
// KEY_ARN is the ARN kmsd returned; the SDK's keyring only accepts a
// well-formed KMS ARN (arn:aws:kms:REGION:ACCOUNT:key/ID).
import {
	AlgorithmSuiteIdentifier, CommitmentPolicy, KMS, KmsKeyringNode,
	buildClient, getClient,
} from "@aws-crypto/client-node";
import { readFileSync, writeFileSync } from "node:fs";

const E = process.env;
const clientProvider = getClient(KMS, {
	endpoint: E.KMSD_ENDPOINT, maxAttempts: 1,
	credentials: { accessKeyId: E.ADMIN_AKID,
	    secretAccessKey: E.ADMIN_SECRET },
});
const { encrypt, decrypt } = buildClient(
	CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);

function pairs(text) {
	const o = {};
	for (const kv of text.split(",").filter((x) => x !== "")) {
		const i = kv.indexOf("=");
		o[kv.slice(0, i)] = kv.slice(i + 1);
	}
	return o;
}

const [mode, arn, ...a] = process.argv.slice(2);
const keyring = new KmsKeyringNode({ generatorKeyId: arn, clientProvider });
if (mode === "encrypt") {
	const [suite, ctx, ...files] = a;
	const suiteId = suite === "0578" ?
	    AlgorithmSuiteIdentifier
		.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY_ECDSA_P384 :
	    AlgorithmSuiteIdentifier
		.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY;
	for (const f of files) {
		const [inp, out] = f.split(":");
		const { result } = await encrypt(keyring, readFileSync(inp),
		    { suiteId, encryptionContext: pairs(ctx) });
		writeFileSync(out, result);
	}
} else if (mode === "decrypt") {
	const [ctx, ...files] = a;
	for (const f of files) {
		const [inp, out] = f.split(":");
		const { plaintext, messageHeader } = await decrypt(keyring,
		    readFileSync(inp));
		for (const [k, v] of Object.entries(pairs(ctx))) {
			if (messageHeader.encryptionContext[k] !== v) {
				throw new Error(`${inp}: context ${k}: ` +
				    messageHeader.encryptionContext[k]);
			}
		}
		writeFileSync(out, plaintext);
	}
} else {
	console.error("usage: esdk_kms.mjs encrypt|decrypt KEY_ARN ...");
	process.exit(2);
}
