"""tools/sigv4.py: AWS Signature Version 4 (header authorization), the one signer of the Python tools.

Used by tools/servers (bucket creation on SeaweedFS), tools/s3load.py (load) and the S3 client
suite (Tests/S3Clients: requests boto3 would refuse to make). Python standard library only.
"""
import hashlib
import hmac
import urllib.parse

REGION, SERVICE = "us-east-1", "s3"
ALGORITHM = "AWS4-HMAC-SHA256"


def uri_encode(text, keep_slash=False):
    """SigV4's URI encoding: everything but unreserved characters (and '/' with keep_slash)."""
    return urllib.parse.quote(text, safe="-_.~/" if keep_slash else "-_.~")


def query_string(query):
    """The canonical query string of (name, value) pairs, unencoded: encoded, sorted by name then value."""
    return "&".join(f"{k}={v}" for k, v in sorted((uri_encode(k), uri_encode(v)) for k, v in query))


class Signer:
    """Signs requests with one access key. The signing key is derived once a day."""

    def __init__(self, access_key, secret_key, region=REGION, service=SERVICE):
        self.access_key, self.secret_key, self.region, self.service = access_key, secret_key, region, service
        self._day, self._key = None, None

    def signing_key(self, day):
        if day != self._day:
            key = ("AWS4" + self.secret_key).encode()
            for part in (day, self.region, self.service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._day, self._key = day, key
        return self._key

    def authorization(self, method, raw_path, query, headers, payload_hash, amz_date):
        """The Authorization header's value. raw_path: the path exactly as it goes on the request line
        (already percent-encoded; S3's canonical URI is that path, not normalized). query: (name, value)
        pairs, unencoded. headers: all of them signed (host, x-amz-date and x-amz-content-sha256 among
        them), names in any case."""
        lower = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
        names = sorted(lower)
        signed = ";".join(names)
        canonical = "\n".join([method, raw_path, query_string(query), "".join(f"{n}:{lower[n]}\n" for n in names),
                               signed, payload_hash])
        day = amz_date[:8]
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        signature = hmac.new(self.signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        return f"{ALGORITHM} Credential={self.access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"

    def sign(self, method, raw_path, query, headers, payload_hash, when):
        """`headers` with x-amz-date (from the datetime `when`, UTC), x-amz-content-sha256 and
        Authorization added: what to send."""
        amz_date = when.strftime("%Y%m%dT%H%M%SZ")
        out = {**headers, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
        out["Authorization"] = self.authorization(method, raw_path, query, out, payload_hash, amz_date)
        return out


def self_test():
    """The GET Object example of AWS's SigV4 documentation for S3 (header authorization): True if
    this signer signs it as AWS does."""
    signer = Signer("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    empty = hashlib.sha256(b"").hexdigest()
    got = signer.authorization("GET", "/test.txt", [], {
        "host": "examplebucket.s3.amazonaws.com", "range": "bytes=0-9",
        "x-amz-content-sha256": empty, "x-amz-date": "20130524T000000Z"}, empty, "20130524T000000Z")
    want = ("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    return got == want, got, want
