#!/usr/bin/env python3
"""The peer of usercube-upgrade's re-encryption: the same conversion done by hand with Python's
`cryptography` (OpenSSL), in one process, one file after the other, as an administrator would
script it. Used by `cargo bench --bench reencrypt` (many-small-files case) and by
`scripts/runbook-compare.sh` (the plain script's re-encryption).

usage: peer-reencrypt.py PFX PASSWORD PATH...
  PATH: a file, or a folder searched recursively. Every regular file that starts with the
  legacy (5.1) magic 93 10 01 00 is decrypted (RSA-OAEP-SHA-1 key, AES-256-CBC, PKCS#7) and
  rewritten in place in the new format (encryption-format.md: RSA-OAEP-SHA-256 key,
  AES-256-GCM STREAM in 64 KiB chunks), through a temporary file renamed over it. Other files
  are left alone. Nothing is fsynced (the callers time a `sync` separately). Prints
  "N files" on stdout.

Exit status 3 if `cryptography` is not installed (the callers skip the peer with a message),
2 on bad input.
"""
import hashlib
import os
import sys

try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
except ImportError:
    print("peer-reencrypt.py: Python's `cryptography` is not installed (pip install cryptography)",
          file=sys.stderr)
    sys.exit(3)

LEGACY_MAGIC = b"\x93\x10\x01\x00"
NEW_MAGIC = b"UCENC\x01"
CHUNK = 64 * 1024


def files_of(paths):
    for p in paths:
        if os.path.isdir(p):
            for d, _, names in os.walk(p):
                for n in sorted(names):
                    yield os.path.join(d, n)
        elif os.path.isfile(p):
            yield p


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    pfx, password, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(pfx, "rb") as f:
        key, cert, _ = pkcs12.load_key_and_certificates(f.read(), password.encode())
    public = cert.public_key()
    k = public.key_size // 8
    thumbprint = hashlib.sha1(cert.public_bytes(Encoding.DER)).digest()
    oaep_sha1 = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    oaep_sha256 = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(),
                               label=None)
    done = 0
    for path in files_of(paths):
        with open(path, "rb") as f:
            data = f.read()
        if not data.startswith(LEGACY_MAGIC):
            continue
        wrapped, iv, ct = data[4:4 + k], data[4 + k:20 + k], data[20 + k:]
        if len(ct) == 0 or len(ct) % 16:
            print(f"{path}: truncated legacy file", file=sys.stderr)
            sys.exit(2)
        old_key = key.decrypt(wrapped, oaep_sha1)
        dec = Cipher(algorithms.AES(old_key), modes.CBC(iv)).decryptor()
        plain = dec.update(ct) + dec.finalize()
        pad = plain[-1]
        if not 1 <= pad <= 16 or plain[-pad:] != bytes([pad]) * pad:
            print(f"{path}: bad padding", file=sys.stderr)
            sys.exit(2)
        plain = plain[:-pad]

        new_key = os.urandom(32)
        prefix = os.urandom(7)
        new_wrapped = public.encrypt(new_key, oaep_sha256)
        header = NEW_MAGIC + thumbprint + len(new_wrapped).to_bytes(2, "big") + new_wrapped + prefix
        gcm = AESGCM(new_key)
        out = [header]
        chunks = max(1, -(-len(plain) // CHUNK))
        for i in range(chunks):
            last = i + 1 == chunks
            nonce = prefix + i.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
            out.append(gcm.encrypt(nonce, plain[i * CHUNK:(i + 1) * CHUNK], header))
        tmp = path + ".peer-tmp"
        with open(tmp, "wb") as f:
            f.write(b"".join(out))
        os.replace(tmp, path)
        done += 1
    print(f"{done} files")


if __name__ == "__main__":
    main()
