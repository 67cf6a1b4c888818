"""Real HTTP servers standing in for the Chinese providers that cannot run here.

Each checks a request the way its provider documents it — the signature recomputed from the
known test secret, the required parameters, an approved sign name and template — records what
it received, and answers in the provider's own success and error shapes. Nothing is mocked
on our side: the official SDKs (or our own HTTP code) talk to these over TCP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

Answer = tuple[int, dict[str, Any]]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float
    status: int = 0
    answer: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ProviderServer:
    url: str = ""
    host: str = ""
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def accepted(self) -> list[Seen]:
        return [s for s in self.seen if s.status == 200 and _ok(s.answer)]

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Seen]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.seen) < n and time.monotonic() < deadline:
                self.arrived.wait(deadline - time.monotonic())
        return list(self.seen)


def _ok(answer: dict[str, Any]) -> bool:
    if "Code" in answer:
        return bool(answer["Code"] == "OK")
    if "errcode" in answer:
        return bool(answer["errcode"] == 0)
    resp = answer.get("Response", {})
    return "Error" not in resp and all(s["Code"] == "Ok" for s in resp.get("SendStatusSet", []))


@contextmanager
def serve(
    handle: Callable[[Seen], Answer], content_type: str = "application/json;charset=utf-8"
) -> Iterator[ProviderServer]:
    server_state = ProviderServer()

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            parts = urlsplit(self.path)
            seen = Seen(
                self.command,
                parts.path,
                dict(parse_qsl(parts.query, keep_blank_values=True)),
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
                time.monotonic(),
            )
            seen.query_raw = parts.query  # type: ignore[attr-defined]
            status, answer = handle(seen)
            seen.status, seen.answer = status, answer
            with server_state.arrived:
                server_state.seen.append(seen)
                server_state.arrived.notify_all()
            payload = json.dumps(answer, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _any

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.host = f"127.0.0.1:{server.server_address[1]}"
    server_state.url = f"http://{server_state.host}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


# -- Alibaba Cloud (ACS3-HMAC-SHA256, RPC style: SendSms, SingleCallByTts) ----------------------


@dataclass
class Aliyun:
    """Alibaba's checks for SendSms (dysmsapi) and SingleCallByTts (dyvmsapi)."""

    access_key_id: str = "LTAI-test-key"
    access_key_secret: str = "aliyun-test-secret-0123456789"
    signs: set[str] = field(default_factory=lambda: {"阳光社区"})
    # template code -> the variables its approved text uses
    templates: dict[str, set[str]] = field(default_factory=dict)
    # phone numbers the provider throttles (isv.BUSINESS_LIMIT_CONTROL)
    limited: set[str] = field(default_factory=set)
    nonces: set[str] = field(default_factory=set)

    @staticmethod
    def _enc(s: str) -> str:
        return quote(s, safe="-_.~")

    def signature_error(self, s: Seen) -> str | None:
        auth = s.headers.get("authorization", "")
        algo, _, rest = auth.partition(" ")
        if algo != "ACS3-HMAC-SHA256":
            return "IncompleteSignature"
        fields = dict(p.split("=", 1) for p in rest.split(",") if "=" in p)
        if fields.get("Credential") != self.access_key_id:
            return "InvalidAccessKeyId.NotFound"
        if s.headers.get("x-acs-content-sha256") != _sha256_hex(s.body):
            return "SignatureDoesNotMatch"
        nonce = s.headers.get("x-acs-signature-nonce", "")
        if not nonce or nonce in self.nonces:
            return "SignatureNonceUsed"
        self.nonces.add(nonce)
        date = datetime.strptime(s.headers.get("x-acs-date", ""), "%Y-%m-%dT%H:%M:%SZ")
        if abs(date.replace(tzinfo=UTC).timestamp() - time.time()) > 900:
            return "InvalidTimeStamp.Expired"
        signed = fields.get("SignedHeaders", "").split(";")
        if "host" not in signed or "x-acs-date" not in signed:
            return "IncompleteSignature"
        pairs = sorted(parse_qsl(getattr(s, "query_raw", ""), keep_blank_values=True))
        canonical_query = "&".join(f"{self._enc(k)}={self._enc(v)}" for k, v in pairs)
        canonical_headers = "".join(f"{h}:{s.headers.get(h, '').strip()}\n" for h in signed)
        canonical = "\n".join(
            [
                s.method,
                s.path or "/",
                canonical_query,
                canonical_headers,
                ";".join(signed),
                _sha256_hex(s.body),
            ]
        )
        to_sign = "ACS3-HMAC-SHA256\n" + _sha256_hex(canonical.encode())
        want = hmac.new(self.access_key_secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(want, fields.get("Signature", "")) else "SignatureDoesNotMatch"

    def handle(self, s: Seen) -> Answer:
        rid = str(uuid.uuid4()).upper()
        if (err := self.signature_error(s)) is not None:
            return 400, {
                "RequestId": rid,
                "Code": err,
                "Message": "Specified signature does not match our calculation.",
                "HostId": "dysmsapi.aliyuncs.com",
            }
        action = s.headers.get("x-acs-action")
        q = s.query
        if action == "SendSms" and s.headers.get("x-acs-version") == "2017-05-25":
            return 200, self._send_sms(q, rid)
        if action == "SingleCallByTts" and s.headers.get("x-acs-version") == "2017-05-25":
            return 200, self._call(q, rid)
        return 404, {"RequestId": rid, "Code": "InvalidAction.NotFound", "Message": str(action)}

    def _template_error(self, code: str | None, raw: str | None) -> dict[str, str] | None:
        if code not in self.templates:
            return {"Code": "isv.SMS_TEMPLATE_ILLEGAL", "Message": "该账号下找不到对应模板"}
        try:
            values = json.loads(raw or "{}")
        except ValueError:
            return {"Code": "isv.INVALID_JSON_PARAM", "Message": "JSON参数不合法"}
        if missing := self.templates[code] - set(values):
            return {"Code": "isv.TEMPLATE_MISSING_PARAMETERS", "Message": f"模板变量缺少对应参数值 {sorted(missing)}"}
        if any(len(str(v)) > 35 for v in values.values()):
            return {"Code": "isv.PARAM_LENGTH_LIMIT", "Message": "参数超出长度限制"}
        return None

    def _send_sms(self, q: dict[str, str], rid: str) -> dict[str, Any]:
        phone = q.get("PhoneNumbers", "")
        if not phone.isdigit() or len(phone) != 11:
            return {"RequestId": rid, "Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号"}
        if q.get("SignName") not in self.signs:
            return {"RequestId": rid, "Code": "isv.SMS_SIGNATURE_ILLEGAL", "Message": "该账号下找不到对应签名"}
        if err := self._template_error(q.get("TemplateCode"), q.get("TemplateParam")):
            return {"RequestId": rid, **err}
        if phone in self.limited:
            return {"RequestId": rid, "Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发号码天级流控Permits:10"}
        return {"RequestId": rid, "Code": "OK", "Message": "OK", "BizId": f"{uuid.uuid4().int % 10**18}^0"}

    def _call(self, q: dict[str, str], rid: str) -> dict[str, Any]:
        if not q.get("CalledNumber", "").isdigit() or not q.get("CalledShowNumber"):
            return {"RequestId": rid, "Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "号码格式错误"}
        if err := self._template_error(q.get("TtsCode"), q.get("TtsParam")):
            return {"RequestId": rid, **err}
        return {"RequestId": rid, "Code": "OK", "Message": "OK", "CallId": f"{uuid.uuid4().int % 10**12}^10{uuid.uuid4().int % 10**8}"}


# -- Tencent Cloud SMS (TC3-HMAC-SHA256) ---------------------------------------------------------


@dataclass
class Tencent:
    secret_id: str = "AKID-test-id"
    secret_key: str = "tencent-test-secret-0123456789"
    sdk_app_id: str = "1400000001"
    signs: set[str] = field(default_factory=lambda: {"阳光社区"})
    templates: dict[str, int] = field(default_factory=dict)  # id -> number of {n} parameters
    limited: set[str] = field(default_factory=set)  # +86 numbers over their daily limit

    def signature_error(self, s: Seen) -> str | None:
        auth = s.headers.get("authorization", "")
        algo, _, rest = auth.partition(" ")
        if algo != "TC3-HMAC-SHA256":
            return "AuthFailure.SignatureFailure"
        fields = dict(p.strip().split("=", 1) for p in rest.split(",") if "=" in p)
        cred = fields.get("Credential", "").split("/")
        if len(cred) != 4 or cred[0] != self.secret_id:
            return "AuthFailure.SecretIdNotFound"
        _id, date, service, term = cred
        ts = int(s.headers.get("x-tc-timestamp", "0"))
        if abs(ts - time.time()) > 300:
            return "AuthFailure.SignatureExpire"
        if date != datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d") or service != "sms" or term != "tc3_request":
            return "AuthFailure.SignatureFailure"
        signed = fields.get("SignedHeaders", "").split(";")
        canonical = "\n".join(
            [
                s.method,
                s.path or "/",
                getattr(s, "query_raw", ""),
                "".join(f"{h}:{s.headers.get(h, '').strip().lower()}\n" for h in signed),
                ";".join(signed),
                _sha256_hex(s.body),
            ]
        )
        to_sign = "\n".join(
            ["TC3-HMAC-SHA256", str(ts), f"{date}/sms/tc3_request", _sha256_hex(canonical.encode())]
        )
        key = _hmac(_hmac(_hmac(("TC3" + self.secret_key).encode(), date), "sms"), "tc3_request")
        want = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(want, fields.get("Signature", ""))
        return None if ok else "AuthFailure.SignatureFailure"

    def handle(self, s: Seen) -> Answer:
        rid = str(uuid.uuid4())

        def error(code: str, message: str) -> Answer:
            return 200, {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": rid}}

        if (err := self.signature_error(s)) is not None:
            return error(err, "The provided credentials could not be validated.")
        if s.headers.get("x-tc-action") != "SendSms" or s.headers.get("x-tc-version") != "2021-01-11":
            return error("InvalidAction", "action not found")
        body = s.json()
        for name in ("PhoneNumberSet", "SmsSdkAppId", "TemplateId"):
            if not body.get(name):
                return error("MissingParameter", f"The request is missing a required parameter `{name}`.")
        if body["SmsSdkAppId"] != self.sdk_app_id:
            return error("FailedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId verify fail")
        if body.get("SignName") not in self.signs:
            return error("FailedOperation.SignatureIncorrectOrUnapproved", "signature not approved")
        template = body["TemplateId"]
        if template not in self.templates:
            return error("FailedOperation.TemplateIncorrectOrUnapproved", "template not approved")
        if len(body.get("TemplateParamSet") or []) != self.templates[template]:
            return error("InvalidParameterValue.TemplateParameterFormatError", "wrong number of parameters")
        statuses = []
        for phone in body["PhoneNumberSet"]:
            if phone in self.limited:
                statuses.append({"SerialNo": "", "PhoneNumber": phone, "Fee": 0, "SessionContext": body.get("SessionContext", ""), "Code": "LimitExceeded.PhoneNumberDailyLimit", "Message": "the number of SMS messages sent from a single mobile number every day exceeds the upper limit", "IsoCode": "CN"})
            else:
                statuses.append({"SerialNo": f"2640:{uuid.uuid4().int % 10**20}", "PhoneNumber": phone, "Fee": 1, "SessionContext": body.get("SessionContext", ""), "Code": "Ok", "Message": "send success", "IsoCode": "CN"})
        return 200, {"Response": {"SendStatusSet": statuses, "RequestId": rid}}


# -- WeCom application messages and group robots; DingTalk robots -----------------------------


@dataclass
class WeCom:
    """gettoken + message/send; tokens can be expired by the test (then errcode 42001)."""

    corp_id: str = "ww-test-corp"
    corp_secret: str = "wecom-test-secret"
    agent_id: int = 1000002
    tokens: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=lambda: {"zhangmin"})

    def expire_all(self) -> None:
        self.tokens.clear()

    def handle(self, s: Seen) -> Answer:
        if s.path == "/cgi-bin/gettoken":
            if s.query.get("corpid") != self.corp_id or s.query.get("corpsecret") != self.corp_secret:
                return 200, {"errcode": 40001, "errmsg": "invalid credential"}
            token = uuid.uuid4().hex
            self.tokens.add(token)
            return 200, {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}
        if s.path == "/cgi-bin/message/send":
            token = s.query.get("access_token", "")
            if not token:
                return 200, {"errcode": 41001, "errmsg": "access_token missing"}
            if token not in self.tokens:
                return 200, {"errcode": 42001, "errmsg": "access_token expired"}
            body = s.json()
            if body.get("agentid") != self.agent_id or body.get("msgtype") not in ("text", "textcard", "markdown"):
                return 200, {"errcode": 40056, "errmsg": "invalid agentid"}
            if body.get("touser") not in self.users:
                return 200, {"errcode": 81013, "errmsg": "user & party & tag all invalid", "invaliduser": body.get("touser")}
            return 200, {"errcode": 0, "errmsg": "ok", "msgid": uuid.uuid4().hex}
        return 404, {"errcode": 404, "errmsg": "not found"}


@dataclass
class Robot:
    """A WeCom or DingTalk group robot. DingTalk 加签: the timestamp (ms) and sign in the
    query must be HMAC-SHA256(secret, f"{timestamp}\\n{secret}"), base64, within an hour."""

    dingtalk_secret: str | None = None
    refuse: dict[str, Any] | None = None  # answer every message with this (errcode ≠ 0)

    def sign_error(self, s: Seen) -> dict[str, Any] | None:
        if self.dingtalk_secret is None:
            return None
        ts, sign = s.query.get("timestamp", ""), s.query.get("sign", "")
        if not ts.isdigit() or abs(int(ts) - time.time() * 1000) > 3600_000:
            return {"errcode": 310000, "errmsg": "sign not match, more: [timestamp]"}
        digest = hmac.new(self.dingtalk_secret.encode(), f"{ts}\n{self.dingtalk_secret}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode(), sign):
            return {"errcode": 310000, "errmsg": "sign not match"}
        return None

    def handle(self, s: Seen) -> Answer:
        if (err := self.sign_error(s)) is not None:
            return 200, err
        if self.refuse is not None:
            return 200, self.refuse
        body = s.json()
        if body.get("msgtype") not in ("text", "markdown"):
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        return 200, {"errcode": 0, "errmsg": "ok"}
