#!/usr/bin/python3
"""Checks a controller image in an OCI archive without running a container.

    check-archive.py ARCHIVE BINARY VERSION [--revision REV] [--source URL] [--ref REF]

Reads the archive as written by `buildah push IMAGE oci-archive:ARCHIVE:REF`, verifies every
blob's digest, then checks the image config (linux/amd64, ENTRYPOINT the binary, numeric
non-root USER, OCI labels), that the layers hold exactly the binary and the CA bundle, that the
binary is statically linked (no ELF interpreter), and runs `BINARY --version` from the extracted
file with an empty environment: it must print "BINARY VERSION". Prints one summary line per
image; exits non-zero with the reason on the first failure.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import tempfile

ENTRYPOINT = "/usr/local/bin/controller"
CA = "etc/ssl/certs/ca-certificates.crt"
USER = "65532:65532"


def fail(msg):
    print(f"check-archive: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("archive")
    p.add_argument("binary")
    p.add_argument("version")
    p.add_argument("--revision")
    p.add_argument("--source")
    p.add_argument("--ref")
    a = p.parse_args()

    with tarfile.open(a.archive) as t:
        files = {m.name.lstrip("./"): m for m in t.getmembers() if m.isfile()}

        def read(name):
            if name not in files:
                fail(f"{a.archive}: no {name}")
            return t.extractfile(files[name]).read()

        def blob(desc):
            algo, hexd = desc["digest"].split(":", 1)
            data = read(f"blobs/{algo}/{hexd}")
            if algo != "sha256" or hashlib.sha256(data).hexdigest() != hexd:
                fail(f"blob {desc['digest']}: digest mismatch")
            if len(data) != desc["size"]:
                fail(f"blob {desc['digest']}: size {len(data)} != {desc['size']}")
            return data

        layout = json.loads(read("oci-layout"))
        if layout.get("imageLayoutVersion") != "1.0.0":
            fail(f"oci-layout: {layout}")
        index = json.loads(read("index.json"))
        if len(index["manifests"]) != 1:
            fail(f"index.json: {len(index['manifests'])} manifests, want 1")
        mdesc = index["manifests"][0]
        ref = mdesc.get("annotations", {}).get("org.opencontainers.image.ref.name")
        if a.ref and ref != a.ref:
            fail(f"ref name {ref!r}, want {a.ref!r}")
        manifest = json.loads(blob(mdesc))
        config = json.loads(blob(manifest["config"]))
        cfg = config.get("config", {})

        if (config.get("os"), config.get("architecture")) != ("linux", "amd64"):
            fail(f"platform {config.get('os')}/{config.get('architecture')}, want linux/amd64")
        if cfg.get("Entrypoint") != [ENTRYPOINT]:
            fail(f"Entrypoint {cfg.get('Entrypoint')}, want [{ENTRYPOINT!r}]")
        if cfg.get("Cmd"):
            fail(f"Cmd {cfg.get('Cmd')}, want none")
        if cfg.get("User") != USER:
            fail(f"User {cfg.get('User')!r}, want {USER!r}")
        labels = cfg.get("Labels") or {}
        want = {
            "org.opencontainers.image.title": a.binary,
            "org.opencontainers.image.version": a.version,
        }
        if a.revision:
            want["org.opencontainers.image.revision"] = a.revision
        if a.source:
            want["org.opencontainers.image.source"] = a.source
        for k, v in want.items():
            if labels.get(k) != v:
                fail(f"label {k}={labels.get(k)!r}, want {v!r}")

        # The layers' regular files: exactly the binary and the CA bundle, owned by root.
        contents = {}
        for ldesc in manifest["layers"]:
            data = blob(ldesc)
            if ldesc["mediaType"].endswith("+gzip") or data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            with tarfile.open(fileobj=io.BytesIO(data)) as lt:
                for m in lt.getmembers():
                    name = m.name.lstrip("./")
                    if m.isdir():
                        continue
                    if not m.isfile():
                        fail(f"layer entry {name}: not a regular file or directory")
                    contents[name] = (m, lt.extractfile(m).read())
        if sorted(contents) != sorted([CA, ENTRYPOINT.lstrip("/")]):
            fail(f"layer files {sorted(contents)}, want {[CA, ENTRYPOINT.lstrip('/')]}")
        bm, binary = contents[ENTRYPOINT.lstrip("/")]
        if bm.mode & 0o111 != 0o111 or bm.uid != 0:
            fail(f"{ENTRYPOINT}: mode {oct(bm.mode)} uid {bm.uid}, want executable by all, owned by root")
        ca = contents[CA][1]
        if ca.count(b"BEGIN CERTIFICATE") < 50:
            fail(f"{CA}: only {ca.count(b'BEGIN CERTIFICATE')} certificates")

    # Static: an ELF64 x86-64 executable without a PT_INTERP program header.
    if binary[:4] != b"\x7fELF" or binary[4] != 2 or struct.unpack_from("<H", binary, 18)[0] != 62:
        fail(f"{ENTRYPOINT}: not an ELF64 x86-64 file")
    phoff, = struct.unpack_from("<Q", binary, 32)
    phentsize, phnum = struct.unpack_from("<HH", binary, 54)
    for i in range(phnum):
        if struct.unpack_from("<I", binary, phoff + i * phentsize)[0] == 3:
            fail(f"{ENTRYPOINT}: has an ELF interpreter (dynamically linked)")

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, a.binary)
        with open(path, "wb") as f:
            f.write(binary)
        os.chmod(path, 0o555)
        out = subprocess.run([path, "--version"], env={}, cwd=d, capture_output=True, text=True, timeout=30)
    got = out.stdout.strip()
    if out.returncode != 0 or got != f"{a.binary} {a.version}":
        fail(f"{a.binary} --version: exit {out.returncode}, printed {got!r} {out.stderr.strip()!r}")

    layers = sum(l["size"] for l in manifest["layers"])
    print(
        f"ok {ref or a.binary}: {mdesc['digest'][:19]} archive {os.path.getsize(a.archive) / 1e6:.1f} MB, "
        f"layers {layers / 1e6:.1f} MB, binary {len(binary) / 1e6:.1f} MB static, "
        f"entrypoint {ENTRYPOINT}, user {USER}, revision {labels.get('org.opencontainers.image.revision')}, "
        f"--version: {got}"
    )


if __name__ == "__main__":
    main()
