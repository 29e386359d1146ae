"""URI input's policy and its egress proxy, against a real loopback HTTP server with range requests: what is
refused (and that nothing was fetched for it), the budgets, and that a good read is the local file's window."""

from __future__ import annotations

import base64
import collections
import gc
import re
import socket
import threading
import time
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from cloudmask.raster import reference, remote
from cloudmask.raster.errors import BadInput, OverBudget

from rangeserver import RangeServer

LOOPBACK = ["127.0.0.0/8"]


def policy(srv, *paths, **kw):
    kw.setdefault("networks", LOOPBACK)
    return remote.Policy([srv.url(p) for p in (paths or ("cogs/",))], **kw)


def read_window(pol, url, window=Window(300, 400, 256, 200)):
    with remote.reading(pol) as r:
        src = r.open(url)
        return src.read(1, window=window)


def fetched(srv, prefix):
    return [p for _, p, _ in srv.requests if p.startswith(prefix)]


def test_uri_input_is_off_without_prefixes(srv):
    with pytest.raises(remote.Refused, match="URI input is disabled.*allowed_uri_prefixes") as e:
        read_window(remote.Policy(), srv.url("cogs/B02.tif"))
    assert srv.url("cogs/B02.tif") in str(e.value)
    assert srv.requests == []


@pytest.mark.parametrize("uri, error, words", [
    ("file:///etc/passwd", remote.Refused, "scheme file://"),
    ("FILE:///etc/passwd", remote.Refused, "scheme file://"),
    ("/vsicurl/http://127.0.0.1/cogs/B02.tif", remote.Refused, "/vsi paths"),
    ("/vsis3/bucket/B02.tif", remote.Refused, "/vsi paths"),
    ("/etc/passwd", remote.Refused, "scheme (none)"),
    ("ftp://example.com/B02.tif", remote.Refused, "scheme ftp://"),
    ("gopher://example.com/B02.tif", remote.Refused, "scheme gopher://"),
    ("http://example.com/a b.tif", BadInput, "spaces"),
    ("http://example.com/a\\b.tif", BadInput, "backslashes"),
    ("http://example.com/B02.tif#x", BadInput, "fragment"),
])
def test_refuses_what_is_not_an_http_or_bucket_url(srv, uri, error, words):
    with pytest.raises(error, match=re.escape(words)) as e:
        read_window(policy(srv), uri)
    assert uri.split("\\")[0].split(" ")[0][:30] in str(e.value)
    assert srv.requests == []


@pytest.mark.parametrize("path", ["other/B02.tif", "cogs-other/B02.tif", "cogs/../secret/B02.tif",
                                  "cogs/%2e%2e/secret/B02.tif", "secret/B02.tif"])
def test_refuses_urls_outside_the_allowed_prefixes(srv, path):
    with pytest.raises((remote.Refused, BadInput), match="not under an allowed URI prefix|'..' path segments"):
        read_window(policy(srv), srv.url(path))
    assert srv.requests == []


def test_refuses_credentials_and_another_host_in_disguise(srv):
    sneaky = f"http://127.0.0.1:{srv.port}@169.254.169.254/cogs/B02.tif"
    with pytest.raises(BadInput, match="user:password@"):
        read_window(policy(srv), sneaky)
    with pytest.raises(remote.Refused, match="not under an allowed URI prefix"):
        read_window(policy(srv), f"http://localhost:{srv.port}/cogs/B02.tif")  # the prefix names 127.0.0.1


@pytest.mark.parametrize("address, why", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback (inside ::ffff:7f00:1)"), ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"), ("10.1.2.3", "private"), ("172.16.5.4", "private"), ("192.168.0.1", "private"),
    ("fd12:3456::1", "private"), ("100.64.0.1", "not globally reachable"), ("224.0.0.251", "multicast"),
    ("ff02::1", "multicast"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("64:ff9b::a9fe:a9fe", "link-local (inside 64:ff9b::a9fe:a9fe)"), ("2002:a00:1::", "private (inside 2002:a00:1::)"),
    ("::ffff:10.0.0.1", "private (inside ::ffff:a00:1)"), ("192.0.2.1", "private"), ("240.0.0.1", "private"),
])
def test_refused_addresses(address, why):
    assert remote.address_problem(address) == why


@pytest.mark.parametrize("address", ["8.8.8.8", "52.92.136.10", "2606:4700:4700::1111", "142.250.74.110"])
def test_global_addresses_pass(address):
    assert remote.address_problem(address) is None


def test_allowed_networks_are_explicit():
    nets = remote.Policy(["https://mirror.internal/"], networks=["10.0.0.0/8", "fd00::/8"]).networks
    assert remote.address_problem("10.1.2.3", nets) is None
    assert remote.address_problem("::ffff:10.1.2.3", nets) is None
    assert remote.address_problem("fd12::1", nets) is None
    assert remote.address_problem("192.168.0.1", nets) == "private"
    assert remote.address_problem("127.0.0.1", nets) == "loopback"


def test_loopback_is_refused_unless_allowed(srv):
    url = srv.url("cogs/B02.tif")
    with pytest.raises(remote.Refused, match="resolves to loopback address 127.0.0.1") as e:
        read_window(policy(srv, networks=()), url)
    assert url in str(e.value)
    assert srv.requests == []


def test_a_name_or_number_that_resolves_to_loopback_is_refused(srv):
    for host in ("localhost", "2130706433", "0x7f.1"):  # 2130706433 and 0x7f.1 are 127.0.0.1 to getaddrinfo
        url = f"http://{host}:{srv.port}/cogs/B02.tif"
        pol = remote.Policy([f"http://{host}:{srv.port}/cogs/"])
        with pytest.raises(remote.Refused, match="loopback"):
            read_window(pol, url)
    assert srv.requests == []


def test_a_private_address_is_refused_before_any_connection():
    pol = remote.Policy(["http://10.255.255.1:9/cogs/"], networks=LOOPBACK)  # nothing listens there
    with pytest.raises(remote.Refused, match=r"'http://10.255.255.1:9/cogs/B02.tif'.*private address 10.255.255.1"):
        read_window(pol, "http://10.255.255.1:9/cogs/B02.tif")


def test_a_redirect_out_of_the_allow_list_is_refused_and_not_followed(srv):
    srv.redirects["out.tif"] = srv.url("secret/B02.tif")
    pol = policy(srv, "cogs/", "redirect/")
    with pytest.raises(remote.Refused, match="outside the allowed URI prefixes") as e:
        read_window(pol, srv.url("redirect/out.tif"))
    assert srv.url("secret/B02.tif") in str(e.value) and srv.url("redirect/out.tif") in str(e.value)
    assert fetched(srv, "/redirect/") and not fetched(srv, "/secret/")
    with pytest.raises(remote.Refused, match="outside the allowed URI prefixes"):  # again: GDAL cached the failure
        read_window(pol, srv.url("redirect/out.tif"))


def test_a_redirect_to_a_refused_address_is_refused(srv):
    srv.redirects["meta.tif"] = "http://169.254.169.254/latest/meta-data/x.tif"
    pol = remote.Policy([srv.url("redirect/"), "http://169.254.169.254/"], networks=LOOPBACK)
    with pytest.raises(remote.Refused, match="169.254.169.254.*link-local"):
        read_window(pol, srv.url("redirect/meta.tif"))


def test_a_redirect_inside_the_allow_list_is_followed(srv, served):
    srv.redirects["in.tif"] = srv.url("cogs/B03.tif")
    got = read_window(policy(srv, "cogs/", "redirect/"), srv.url("redirect/in.tif"))
    with rasterio.open(served / "cogs" / "B03.tif") as src:
        assert np.array_equal(got, src.read(1, window=Window(300, 400, 256, 200)))


def test_a_good_read_is_the_local_window_and_fetches_only_its_tiles(srv, served):
    url = srv.url("cogs/B04.tif")
    got = read_window(policy(srv), url)
    with rasterio.open(served / "cogs" / "B04.tif") as src:
        assert np.array_equal(got, src.read(1, window=Window(300, 400, 256, 200)))
    size = (served / "cogs" / "B04.tif").stat().st_size
    assert 0 < srv.served["/cogs/B04.tif"] < size / 4
    assert all(rng is not None for method, p, rng in srv.requests if method == "GET")  # range reads only


def test_a_read_over_the_byte_budget_is_413(srv):
    pol = policy(srv, max_bytes=200_000)
    with pytest.raises(OverBudget, match=r"B08.tif.*byte budget of 0.2 MiB"):
        with remote.reading(pol) as r:
            r.open(srv.url("cogs/B08.tif")).read(1)  # the whole 10 m band: ~2 MB
    # the same window within the budget reads
    assert read_window(pol, srv.url("cogs/B08.tif"), Window(0, 0, 64, 64)).shape == (64, 64)


def test_a_server_that_does_not_answer_in_time_is_a_timeout(srv):
    srv.stall_s = 4.0
    pol = policy(srv, "stall/", timeout_s=1.0)
    with pytest.raises(remote.ReadTimeout, match=r"stall/cogs/B02.tif.*time budget of 1 s"):
        read_window(pol, srv.url("stall/cogs/B02.tif"))


def test_only_rasters_are_opened(srv):
    with pytest.raises(BadInput, match="only rasters named .tif"):
        read_window(policy(srv, "items/"), srv.url("items/earth-search.json"))


def test_the_proxy_serves_no_one_without_a_live_token(srv):
    proxy = remote.EgressProxy.get()
    host, port = proxy.address.rsplit(":", 1)
    for auth in (None, "Basic " + base64.b64encode(b"deadbeef:x").decode()):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            head = f"GET {srv.url('cogs/B02.tif')} HTTP/1.1\r\nHost: x\r\n"
            s.sendall((head + (f"Proxy-Authorization: {auth}\r\n" if auth else "") + "\r\n").encode())
            assert s.recv(100).startswith(b"HTTP/1.1 407")
    assert srv.requests == []


@pytest.mark.parametrize("var", ["NO_PROXY", "no_proxy"])
def test_no_proxy_in_the_environment_is_refused(monkeypatch, var):
    """libcurl applies NO_PROXY to every redirect target too, so any entry would let a redirect go around the
    proxy: with URI input on, the service refuses to start (Policy) and to read (reading) while it is set."""
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv(var, "localhost,.amazonaws.com")
    with pytest.raises(ValueError, match=f"{var}=.*remove"):
        remote.Policy(["https://sentinel-cogs.s3.us-west-2.amazonaws.com/"])
    with pytest.raises(ValueError, match=var):
        remote.Policy(["https://storage.googleapis.com/gcp-public-data-sentinel-2/"])  # matched or not
    remote.Policy()  # URI input off: nothing to bypass
    monkeypatch.setenv(var, "")
    remote.Policy(["https://storage.googleapis.com/gcp-public-data-sentinel-2/"])  # empty: fine


def test_a_redirect_to_a_no_proxy_host_is_not_fetched(srv, served, tmp_path, monkeypatch):
    """A redirect from the allowed host to localhost (in NO_PROXY) would make libcurl connect there directly,
    around the proxy's checks: nothing is fetched from that internal server."""
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    pol = policy(srv, "cogs/", "redirect/")  # made before NO_PROXY appears (the environment changed later)
    with RangeServer(served) as internal:
        srv.redirects["internal.tif"] = f"http://localhost:{internal.port}/cogs/B02.tif"
        monkeypatch.setenv("NO_PROXY", "localhost")
        try:
            with pytest.raises(RuntimeError, match="NO_PROXY"):  # remote.Misconfigured
                read_window(pol, srv.url("redirect/internal.tif"))
        finally:
            assert internal.requests == []  # before the fix: GDAL went there directly and read B02
        with pytest.raises(ValueError, match="NO_PROXY"):
            remote.Policy([srv.url("redirect/")], networks=LOOPBACK)
        assert internal.requests == []


def test_port_0_is_refused():
    for url in ("https://h:0/x.tif", "http://h:0/x.tif"):
        with pytest.raises(BadInput, match="bad port"):
            remote.parse(url)


@pytest.mark.parametrize("url", ["http://[::1/x.tif", "https://[::1/B02.tif", "http://[zz]/x.tif"])
def test_an_unparsable_url_is_400(url):
    with pytest.raises(BadInput, match=re.escape(url)):
        remote.parse(url)


def test_a_vrt_served_as_a_tif_is_not_opened(tmp_path):
    """A VRT on an allowed host, named B02.tif, that points at a local file: GDAL would open it with the VRT
    driver and read the local file. Only TIFF bytes (magic) are opened, and only with the GTiff driver."""
    secret = tmp_path / "secret.tif"
    data = np.arange(64 * 64, dtype=np.uint16).reshape(1, 64, 64) + 1234
    with rasterio.open(secret, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint16") as dst:
        dst.write(data)
    root = tmp_path / "www"
    (root / "cogs").mkdir(parents=True)
    (root / "cogs" / "B02.tif").write_text(
        f'<VRTDataset rasterXSize="64" rasterYSize="64"><VRTRasterBand dataType="UInt16" band="1">'
        f'<SimpleSource><SourceFilename relativeToVRT="0">{secret}</SourceFilename><SourceBand>1</SourceBand>'
        f'</SimpleSource></VRTRasterBand></VRTDataset>')
    with RangeServer(root) as evil:
        url = evil.url("cogs/B02.tif")
        with pytest.raises(BadInput, match=re.escape(url) + ".*not a TIFF") as e:
            read_window(policy(evil), url, Window(0, 0, 64, 64))
        assert not isinstance(e.value, remote.Refused)  # 400: the file is not what it says
        assert "1234" not in str(e.value)


def test_only_tiff_magic_is_accepted():
    for head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        assert remote.tiff_magic(head + b"rest")
    for head in (b"<VRT", b"\x89PNG", b"II*", b"", b"\x00\x00\x00\x0cjP  "):
        assert not remote.tiff_magic(head)


class _SlowDict(collections.OrderedDict):
    """A real OrderedDict that lets other threads run between its steps, so a missing lock shows every time."""

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        time.sleep(0.0002)

    def __contains__(self, key):
        found = super().__contains__(key)
        time.sleep(0.0002)
        return found


def test_refusals_are_remembered_safely_across_threads(monkeypatch):
    """The proxy's threads remember refusals while requests look them up (remote._REFUSED): no KeyError."""
    monkeypatch.setattr(remote, "_REFUSED", _SlowDict())
    monkeypatch.setattr(remote, "_REFUSED_KEPT", 2)
    errors = []

    def work(k):
        try:
            for i in range(200):
                url = f"http://h/{k}/{i}.tif"
                remote._remember_refusal(url, "no")
                remote.Session(remote.Policy()).error(url, "gone")  # looks the refusal up
        except Exception as e:  # what the test is looking for
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(remote._REFUSED) <= 2


def test_a_failed_fetch_closes_its_connection(srv):
    """fetch() whose getresponse raises (a server that does not answer HTTP) still closes its connection."""
    pol = policy(srv, "garbage/")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(BadInput, match=re.escape(srv.url("garbage/item.json"))):
            with remote.reading(pol) as r:
                r.fetch(srv.url("garbage/item.json"))
        gc.collect()
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning) and "socket" in str(w.message)]
    assert leaked == []


def test_s3_urls_read_through_the_configured_endpoint(srv, served):
    pol = remote.Policy(["s3://cogs/"], networks=LOOPBACK, s3=remote.Endpoint(srv.base))
    got = read_window(pol, "s3://cogs/B02.tif")
    with rasterio.open(served / "cogs" / "B02.tif") as src:
        assert np.array_equal(got, src.read(1, window=Window(300, 400, 256, 200)))
    assert fetched(srv, "/cogs/B02.tif")
    with pytest.raises(remote.Refused, match="not under an allowed URI prefix"):
        read_window(pol, "s3://secret/B02.tif")


def test_one_url_per_band_reads_only_the_picked_bands(srv):
    bands = ("B01", "B02", "B03", "B04", "B08", "B11")
    uris = [srv.url(f"cogs/{b}.tif") for b in bands]

    def pick(descriptions, count):
        assert descriptions == bands and count == 6
        return [3, 2]  # B03, B02

    r = reference.read_uris(uris, policy(srv), window=[10, 20, 300, 200], pick=pick)
    assert r.data.shape == (2, 200, 300) and r.descriptions == bands
    # the other four files are never asked for (B02's and B03's tiles may come from GDAL's cache of earlier reads)
    assert {p for _, p, _ in srv.requests} <= {"/cogs/B02.tif", "/cogs/B03.tif"}


@pytest.fixture(scope="module")
def tls_server(served, tmp_path_factory):
    """The same tree over https, with a self-signed certificate for 127.0.0.1 made here (`cryptography`, a dev
    dependency: no openssl binary needed) and trusted through GDAL_CURL_CA_BUNDLE (libcurl in GDAL) and SSL_CERT_FILE
    (Python's ssl)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    d = tmp_path_factory.mktemp("tls")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    from rangeserver import RangeServer

    with RangeServer(served, tls=(d / "cert.pem", d / "key.pem")) as s:
        yield s, d / "cert.pem"


def test_https_reads_through_a_connect_tunnel(tls_server, served, srv, monkeypatch):
    """The path public buckets take: CONNECT host:port through the proxy, TLS end to end; a redirect to another
    host:port is refused at the proxy (it only sees CONNECT); the item fetch follows the same rules."""
    https, cert = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # Python's ssl (the item fetch)
    https.requests.clear()
    pol = remote.Policy([https.url("cogs/"), https.url("redirect/"), https.url("items/")], networks=LOOPBACK)
    with rasterio.Env(GDAL_CURL_CA_BUNDLE=str(cert)):  # libcurl in GDAL
        got = read_window(pol, https.url("cogs/B02.tif"))
        with rasterio.open(served / "cogs" / "B02.tif") as src:
            assert np.array_equal(got, src.read(1, window=Window(300, 400, 256, 200)))
        assert any(p == "/cogs/B02.tif" for _, p, _ in https.requests)
        https.redirects["away.tif"] = srv.url("cogs/B02.tif")  # the plain-http server: another port
        with pytest.raises(remote.Refused, match=f"127.0.0.1:{srv.port}.*outside the allowed URI prefixes"):
            read_window(pol, https.url("redirect/away.tif"))
        assert srv.requests == []
        with remote.reading(pol) as r:
            assert b'"type": "Feature"' in r.fetch(https.url("items/planetary.json"))


def test_gs_urls_read_through_the_configured_endpoint(srv, served):
    pol = remote.Policy(["gs://cogs/"], networks=LOOPBACK, gs=remote.Endpoint(srv.base))
    got = read_window(pol, "gs://cogs/B03.tif")
    with rasterio.open(served / "cogs" / "B03.tif") as src:
        assert np.array_equal(got, src.read(1, window=Window(300, 400, 256, 200)))
    assert fetched(srv, "/cogs/B03.tif")
    with pytest.raises(remote.Refused, match="not under an allowed URI prefix"):
        read_window(pol, "gs://secret/B02.tif")
