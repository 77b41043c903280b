// The AWS Encryption SDK for JavaScript (@aws-crypto/client-node) with a
// raw AES keyring, to check libkmsclient's envelope format against an
// independent implementation in both directions without any KMS (called
// by tests/test_envelope.c; the keyring is the one of the SDK's test
// vectors: namespace aws-raw-vectors-persistant, name aes-256, key bytes
// 00 01 .. 09 10 .. 31).
//
//   node esdk_raw.mjs encrypt SUITE FRAME k=v,k=v IN:OUT ...
//   node esdk_raw.mjs decrypt k=v,k=v IN:OUT ...  (pairs the context must hold)
//
// Many files per run: node starts once.
// Exits non-zero with a message on any failure.
import {
	AlgorithmSuiteIdentifier, CommitmentPolicy, RawAesKeyringNode,
	RawAesWrappingSuiteIdentifier, buildClient,
} from "@aws-crypto/client-node";
import { readFileSync, writeFileSync } from "node:fs";

const key = Uint8Array.from([0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
	0x07, 0x08, 0x09, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
	0x18, 0x19, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
	0x29, 0x30, 0x31]);
const keyring = new RawAesKeyringNode({
	keyName: "aes-256", keyNamespace: "aws-raw-vectors-persistant",
	unencryptedMasterKey: key,
	wrappingSuite:
	    RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
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

const [mode, ...a] = process.argv.slice(2);
if (mode === "encrypt") {
	const [suite, frame, ctx, ...files] = a;
	const suiteId = suite === "0578" ?
	    AlgorithmSuiteIdentifier
		.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY_ECDSA_P384 :
	    AlgorithmSuiteIdentifier
		.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY;
	for (const f of files) {
		const [inp, out] = f.split(":");
		const { result } = await encrypt(keyring, readFileSync(inp), {
			suiteId, encryptionContext: pairs(ctx),
			frameLength: Number(frame),
		});
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
	console.error("usage: esdk_raw.mjs encrypt|decrypt ...");
	process.exit(2);
}
