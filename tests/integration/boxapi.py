"""A small Box API client for tests (stdlib only: urllib).

    c = BoxClient(api="http://127.0.0.1:PORT/2.0",
                  upload="http://127.0.0.1:PORT/api/2.0", token="...")
    c.request(method, url, body=None, headers=None) -> (status, headers, bytes)
        body: bytes, str, or a dict/list (sent as JSON).  headers of the
        answer: an http.client.HTTPMessage (case-insensitive .get()).
        Redirects are not followed; errors are returned, not raised.
    c.create_folder(parent_id, name) -> folder dict
    c.upload(parent_id, name, data, mtime=None) -> file dict (simple upload)
    c.upload_version(file_id, data, mtime=None, name=None) -> file dict
    c.upload_chunked(parent_id, name, data, mtime=None) -> file dict
    c.list(folder_id) -> every entry (marker paging), with size, sha1,
        content_modified_at, modified_at, etag
    c.get_file(id), c.get_folder(id) -> dicts;  c.download(id) -> bytes
    c.find("a/b/c") -> entry dict or None;  c.tree() -> {path: sha1|None}

Helper functions: multipart(attributes, data) -> (body, headers),
sha1_b64(data), parts_of(data, part_size).

Every method except request() raises BoxError on an unexpected status.
"""

import base64
import hashlib
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 60
LIST_FIELDS = ("type,id,name,size,sha1,etag,sequence_id,file_version,"
               "content_modified_at,content_created_at,modified_at,"
               "created_at,item_status,parent")


class BoxError(Exception):
    def __init__(self, what, status, body):
        self.status = status
        self.body = body
        try:
            self.json = json.loads(body)
        except (ValueError, TypeError):
            self.json = None
        self.code = self.json.get("code") if isinstance(self.json,
                                                        dict) else None
        super().__init__("%s: HTTP %s %s" % (what, status,
                                             body[:300] if body else b""))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _opener_for(cafile):
    handlers = [_NoRedirect]
    if cafile:
        ctx = ssl.create_default_context(cafile=str(cafile))
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    return urllib.request.build_opener(*handlers)


def sha1_hex(data):
    return hashlib.sha1(data).hexdigest()


def sha1_b64(data):
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def rfc3339(t):
    """Seconds since the epoch (or an RFC 3339 string) -> RFC 3339 UTC."""
    if isinstance(t, str):
        return t
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))


def multipart(attributes, data, filename="file", boundary=None,
              attributes_first=True):
    """A multipart/form-data body for POST /files/content: the
    `attributes` JSON part (first unless told) and the file part."""
    boundary = boundary or "boxsimtestboundary%s" % sha1_hex(data)[:12]
    b = boundary.encode()
    att = (b"--" + b + b"\r\nContent-Disposition: form-data; "
           b"name=\"attributes\"\r\n\r\n" +
           json.dumps(attributes).encode() + b"\r\n")
    fil = (b"--" + b + b"\r\nContent-Disposition: form-data; name=\"file\";"
           b" filename=\"" + filename.encode() + b"\"\r\nContent-Type: "
           b"application/octet-stream\r\n\r\n" + data + b"\r\n")
    body = (att + fil if attributes_first else fil + att) + \
        b"--" + b + b"--\r\n"
    return body, {"Content-Type":
                  "multipart/form-data; boundary=" + boundary}


def parts_of(data, part_size):
    """[(offset, bytes)] cut at part_size."""
    return [(o, data[o:o + part_size])
            for o in range(0, len(data), part_size)]


class BoxClient:
    def __init__(self, api, upload, token, cafile=None):
        """cafile: a PEM file to trust for https (boxsim's --tls-cert)."""
        self.api = api.rstrip("/")
        self.upload_root = upload.rstrip("/")
        self.token = token
        self._opener = _opener_for(cafile)

    # --- raw ------------------------------------------------------------

    def request(self, method, url, body=None, headers=None, timeout=TIMEOUT):
        h = {}
        if self.token is not None:
            h["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        elif isinstance(body, str):
            body = body.encode()
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        req = urllib.request.Request(url, data=body, method=method,
                                     headers=h)
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            try:
                raw = e.read()
            except OSError:
                raw = b""
            return e.code, e.headers, raw

    def _json(self, what, want, method, url, body=None, headers=None):
        st, _, raw = self.request(method, url, body, headers)
        if st not in want:
            raise BoxError(what, st, raw)
        return json.loads(raw) if raw else None

    # --- folders ----------------------------------------------------------

    def create_folder(self, parent_id, name):
        return self._json("create_folder", (201,), "POST",
                          self.api + "/folders",
                          {"name": name, "parent": {"id": str(parent_id)}})

    def get_folder(self, folder_id):
        return self._json("get_folder", (200,), "GET",
                          self.api + "/folders/%s" % folder_id)

    def list(self, folder_id, fields=LIST_FIELDS, limit=1000):
        out, marker = [], None
        while True:
            q = {"usemarker": "true", "limit": str(limit), "fields": fields}
            if marker:
                q["marker"] = marker
            page = self._json("list", (200,), "GET",
                              self.api + "/folders/%s/items?%s" %
                              (folder_id, urllib.parse.urlencode(q)))
            out += page["entries"]
            marker = page.get("next_marker")
            if not marker:
                return out

    # --- files ------------------------------------------------------------

    def get_file(self, file_id):
        return self._json("get_file", (200,), "GET",
                          self.api + "/files/%s" % file_id)

    def download(self, file_id):
        st, hdrs, raw = self.request("GET", self.api +
                                     "/files/%s/content" % file_id)
        if st in (301, 302, 303, 307) and hdrs.get("Location"):
            st, hdrs, raw = self.request("GET", hdrs["Location"])
        if st != 200:
            raise BoxError("download", st, raw)
        return raw

    def upload(self, parent_id, name, data, mtime=None):
        att = {"name": name, "parent": {"id": str(parent_id)}}
        if mtime is not None:
            att["content_modified_at"] = rfc3339(mtime)
        body, h = multipart(att, data)
        h["Content-MD5"] = sha1_hex(data)
        r = self._json("upload", (201,), "POST",
                       self.upload_root + "/files/content", body, h)
        return r["entries"][0]

    def upload_version(self, file_id, data, mtime=None, name=None):
        att = {}
        if name is not None:
            att["name"] = name
        if mtime is not None:
            att["content_modified_at"] = rfc3339(mtime)
        body, h = multipart(att, data)
        r = self._json("upload_version", (200, 201), "POST",
                       self.upload_root + "/files/%s/content" % file_id,
                       body, h)
        return r["entries"][0]

    def create_session(self, parent_id, name, size):
        return self._json("create_session", (201,), "POST",
                          self.upload_root + "/files/upload_sessions",
                          {"folder_id": str(parent_id), "file_size": size,
                           "file_name": name})

    def put_part(self, session_id, offset, chunk, total):
        h = {"Content-Type": "application/octet-stream",
             "Content-Range": "bytes %d-%d/%d" % (offset,
                                                  offset + len(chunk) - 1,
                                                  total),
             "Digest": "sha=" + sha1_b64(chunk)}
        r = self._json("put_part", (200,), "PUT", self.upload_root +
                       "/files/upload_sessions/%s" % session_id, chunk, h)
        return r["part"]

    def commit(self, session_id, parts, data_sha1_b64, attributes=None,
               max_tries=20):
        body = {"parts": parts}
        if attributes:
            body["attributes"] = attributes
        url = self.upload_root + "/files/upload_sessions/%s/commit" % \
            session_id
        for _ in range(max_tries):
            st, hdrs, raw = self.request("POST", url, body,
                                         {"Digest": "sha=" + data_sha1_b64})
            if st == 202:
                time.sleep(min(float(hdrs.get("Retry-After") or 1), 2))
                continue
            if st not in (200, 201):
                raise BoxError("commit", st, raw)
            return json.loads(raw)["entries"][0]
        raise BoxError("commit", 202, b"still 202")

    def upload_chunked(self, parent_id, name, data, mtime=None):
        s = self.create_session(parent_id, name, len(data))
        parts = [self.put_part(s["id"], o, c, len(data))
                 for o, c in parts_of(data, s["part_size"])]
        att = {"content_modified_at": rfc3339(mtime)} if mtime else None
        return self.commit(s["id"], parts, sha1_b64(data), att)

    # --- paths ------------------------------------------------------------

    def find(self, path):
        """The entry at "a/b/c" (from the root "0"), or None."""
        folder, entry = "0", None
        for name in [p for p in path.strip("/").split("/") if p]:
            if entry is not None and entry["type"] != "folder":
                return None
            entry = next((e for e in self.list(folder)
                          if e["name"] == name), None)
            if entry is None:
                return None
            folder = entry["id"]
        return entry

    def tree(self, folder_id="0", prefix=""):
        """{"a": None (folder), "a/b.txt": sha1, ...} of the whole tree."""
        out = {}
        for e in self.list(folder_id):
            p = prefix + e["name"]
            if e["type"] == "folder":
                out[p] = None
                out.update(self.tree(e["id"], p + "/"))
            else:
                out[p] = e.get("sha1")
        return out
