import CCurl
import Foundation
import Synchronization

/// Runs libcurl transfers for Swift concurrency: one thread drives a curl multi handle, so every
/// request in flight shares one connection cache (keep-alive, reuse across requests and providers)
/// and no cooperative thread ever blocks on the network. Easy handles are pooled and reset between
/// requests. Request bodies are read by libcurl straight out of the caller's buffer; response bodies
/// are written into one buffer sized from Content-Length.
public final class CurlEngine: @unchecked Sendable {
    /// For HTTP providers. SFTP backends each have their own engine (see `SFTPBackend`): libcurl
    /// reuses an SSH connection without checking its host key again, so connections must not be
    /// shared between providers that pin different keys.
    public static let shared = CurlEngine()

    /// libcurl's version line ("libcurl/7.88.1 OpenSSL/3.0 … libssh2/1.10.0 …"), for `a67 version`.
    public static var libraryVersion: String { String(cString: curl_version()) }

    // The multi handle is touched only by the loop thread, except curl_multi_wakeup (thread-safe).
    private let multi: UnsafeMutableRawPointer
    private let pending = Mutex<[Transfer]>([])
    private let idle = Mutex<[EasyHandle]>([])
    private static let idleLimit = 32

    /// A new engine with its own thread and connection cache. The thread ends soon after the
    /// engine is released.
    public init() {
        _ = Self.globalInit
        guard let multi = curl_multi_init() else { fatalError("curl_multi_init failed: out of memory") }
        self.multi = multi
        _ = a67_curlm_setopt_long(multi, CURLMOPT_MAXCONNECTS, 64)
        let thread = Thread { [weak self] in
            while let engine = self { engine.turn() }
        }
        thread.name = "a67-curl"
        thread.start()
    }

    deinit {
        curl_multi_cleanup(multi)
        for handle in idle.withLock({ $0 }) { curl_easy_cleanup(handle.raw) }
    }

    private static let globalInit: Void = { _ = curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    /// Runs `request`. Throws `TransferError` when no HTTP response (or SFTP result) was obtained, and
    /// `CancellationError` when the calling task is cancelled mid-transfer.
    public func perform(_ request: TransferRequest) async throws -> TransferResponse {
        let handle = idle.withLock { $0.popLast() }?.raw ?? curl_easy_init()
        guard let handle else { throw TransferError(.other, code: -1, message: "curl_easy_init failed: out of memory") }
        let transfer = Transfer(request: request, handle: handle)
        do {
            try transfer.configure()
        } catch {
            transfer.releaseResources()
            recycle(handle)
            throw error
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<TransferResponse, Error>) in
                transfer.continuation = continuation
                pending.withLock { $0.append(transfer) }
                curl_multi_wakeup(multi)
            }
        } onCancel: {
            transfer.cancelled.store(true, ordering: .relaxed)
            curl_multi_wakeup(multi) // the loop's next turn runs the progress callback, which aborts
        }
    }

    private func recycle(_ handle: UnsafeMutableRawPointer) {
        curl_easy_reset(handle)
        let kept = idle.withLock { handles in
            guard handles.count < Self.idleLimit else { return false }
            handles.append(EasyHandle(raw: handle))
            return true
        }
        if !kept { curl_easy_cleanup(handle) }
    }

    /// One turn of the loop thread: start queued transfers, move data, finish completed ones, and
    /// wait (at most a second) for sockets or a wakeup.
    private func turn() {
        var running: Int32 = 0
        for transfer in pending.withLock({ list in defer { list.removeAll() }; return list }) {
            let added = curl_multi_add_handle(multi, transfer.handle)
            if added != CURLM_OK {
                finish(transfer, code: CURLE_FAILED_INIT, removeFromMulti: false)
            }
        }
        _ = curl_multi_perform(multi, &running)
        var easy: UnsafeMutableRawPointer?
        var result = CURLE_OK
        while a67_curlm_next_done(multi, &easy, &result) == 1, let easy {
            var context: UnsafeMutableRawPointer?
            _ = a67_curl_getinfo_private(easy, &context)
            guard let context else { continue }
            finish(Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue(), code: result, removeFromMulti: true)
        }
        _ = curl_multi_poll(multi, nil, 0, 1000, nil)
    }

    private func finish(_ transfer: Transfer, code: CURLcode, removeFromMulti: Bool) {
        if removeFromMulti { curl_multi_remove_handle(multi, transfer.handle) }
        let outcome = transfer.outcome(code)
        transfer.releaseResources()
        recycle(transfer.handle)
        transfer.continuation?.resume(with: outcome)
        transfer.continuation = nil
    }
}

/// A pooled easy handle; only one transfer uses it at a time.
private struct EasyHandle: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer
}

/// One request's state while libcurl runs it. Its address is libcurl's callback context; it is
/// retained from `configure` until `releaseResources`.
private final class Transfer: @unchecked Sendable {
    let request: TransferRequest
    let handle: UnsafeMutableRawPointer
    var continuation: CheckedContinuation<TransferResponse, Error>?
    let cancelled = Atomic<Bool>(false)

    private var uploadOffset = 0
    private var body: [UInt8] = []
    private var headers: [HTTPHeader] = []
    private var tooLarge = false
    private var hostKey: String?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var quoteList: UnsafeMutablePointer<curl_slist>?
    private var postQuoteList: UnsafeMutablePointer<curl_slist>?
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
    private var retained: Unmanaged<Transfer>?

    init(request: TransferRequest, handle: UnsafeMutableRawPointer) {
        self.request = request
        self.handle = handle
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit { errorBuffer.deallocate() }

    func configure() throws {
        let context = Unmanaged.passRetained(self)
        retained = context
        let pointer = context.toOpaque()
        var status = CURLE_OK
        var failed: CURLoption?
        func check(_ code: CURLcode, _ option: CURLoption? = nil) {
            if status == CURLE_OK && code != CURLE_OK {
                status = code
                failed = option
            }
        }
        func set(_ option: CURLoption, _ value: Int) { check(a67_curl_setopt_long(handle, option, value), option) }
        func set(_ option: CURLoption, _ value: String) { check(value.withCString { a67_curl_setopt_ptr(handle, option, $0) }, option) }

        set(CURLOPT_URL, request.url)
        check(a67_curl_setopt_ptr(handle, CURLOPT_PRIVATE, pointer))
        check(a67_curl_setopt_ptr(handle, CURLOPT_ERRORBUFFER, errorBuffer))
        set(CURLOPT_NOSIGNAL, 1)
        set(CURLOPT_PROTOCOLS_STR, "http,https,sftp")
        set(CURLOPT_CONNECTTIMEOUT_MS, Int(request.limits.connectTimeout * 1000))
        set(CURLOPT_LOW_SPEED_TIME, request.limits.stallSeconds)
        set(CURLOPT_LOW_SPEED_LIMIT, request.limits.stallBytesPerSecond)
        set(CURLOPT_TCP_KEEPALIVE, 1)
        if let pin = request.trust.pinnedPublicKey {
            // A pinned key replaces the CA chain: the peer must hold exactly that key (a self-signed
            // controller certificate, whatever name it carries).
            set(CURLOPT_SSL_VERIFYPEER, 0)
            set(CURLOPT_SSL_VERIFYHOST, 0)
            set(CURLOPT_PINNEDPUBLICKEY, pin)
        } else {
            set(CURLOPT_SSL_VERIFYPEER, 1)
            set(CURLOPT_SSL_VERIFYHOST, 2)
        }
        if let caFile = request.trust.caFile { set(CURLOPT_CAINFO, caFile) }
        if request.freshConnection { set(CURLOPT_FRESH_CONNECT, 1) }

        check(a67_curl_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION, writeCallback))
        check(a67_curl_setopt_ptr(handle, CURLOPT_WRITEDATA, pointer))
        check(a67_curl_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION, headerCallback))
        check(a67_curl_setopt_ptr(handle, CURLOPT_HEADERDATA, pointer))
        check(a67_curl_setopt_xferinfo_callback(handle, progressCallback))
        check(a67_curl_setopt_ptr(handle, CURLOPT_XFERINFODATA, pointer))
        set(CURLOPT_NOPROGRESS, 0)

        switch request.method {
        case .get: break
        case .head: set(CURLOPT_NOBODY, 1)
        case .put: set(CURLOPT_UPLOAD, 1)
        case .delete: set(CURLOPT_CUSTOMREQUEST, "DELETE")
        case .custom(let verb):
            set(CURLOPT_CUSTOMREQUEST, verb)
            if request.body != nil { set(CURLOPT_UPLOAD, 1) }
        }
        // An upload without a body sends zero bytes (never whatever libcurl's default reader finds on stdin).
        let upload = request.body ?? (request.method == .put ? [] : nil)
        if let upload {
            set(CURLOPT_UPLOAD, 1)
            check(a67_curl_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(upload.count)))
            check(a67_curl_setopt_data_callback(handle, CURLOPT_READFUNCTION, readCallback))
            check(a67_curl_setopt_ptr(handle, CURLOPT_READDATA, pointer))
            check(a67_curl_setopt_seek_callback(handle, seekCallback))
            check(a67_curl_setopt_ptr(handle, CURLOPT_SEEKDATA, pointer))
        }
        if let range = request.range { set(CURLOPT_RANGE, range) }

        // Headers. An empty "Expect:" stops libcurl waiting for 100 Continue before each upload.
        var lines = request.headers.map { "\($0.name): \($0.value)" }
        if request.body != nil { lines.append("Expect:") }
        headerList = Self.list(lines)
        if let headerList { check(a67_curl_setopt_ptr(handle, CURLOPT_HTTPHEADER, headerList)) }

        let credentials = request.credentials
        if request.url.hasPrefix("sftp:") {
            if let user = credentials.user { set(CURLOPT_USERNAME, user) }
            if let password = credentials.password { set(CURLOPT_PASSWORD, password) }
            var auth = 0
            if let key = credentials.sshPrivateKeyFile {
                set(CURLOPT_SSH_PRIVATE_KEYFILE, key)
                set(CURLOPT_SSH_PUBLIC_KEYFILE, "") // derived from the private key
                if let passphrase = credentials.sshKeyPassphrase { set(CURLOPT_KEYPASSWD, passphrase) }
                auth |= Int(CURLSSH_AUTH_PUBLICKEY)
            }
            if credentials.password != nil { auth |= Int(CURLSSH_AUTH_PASSWORD) | Int(CURLSSH_AUTH_KEYBOARD) }
            set(CURLOPT_SSH_AUTH_TYPES, auth == 0 ? Int(CURLSSH_AUTH_PUBLICKEY) : auth)
            // The host key is checked in the callback: against the pinned fingerprint, or recorded.
            check(a67_curl_setopt_hostkey_callback(handle, hostKeyCallback))
            check(a67_curl_setopt_ptr(handle, CURLOPT_SSH_HOSTKEYDATA, pointer))
            if request.createMissingFolders { set(CURLOPT_FTP_CREATE_MISSING_DIRS, Int(CURLFTP_CREATE_DIR_RETRY.rawValue)) }
            quoteList = Self.list(request.sftpQuote)
            if let quoteList { check(a67_curl_setopt_ptr(handle, CURLOPT_QUOTE, quoteList)) }
            postQuoteList = Self.list(request.sftpPostQuote)
            if let postQuoteList { check(a67_curl_setopt_ptr(handle, CURLOPT_POSTQUOTE, postQuoteList)) }
        } else if let user = credentials.user {
            set(CURLOPT_HTTPAUTH, a67_curlauth_basic)
            set(CURLOPT_USERNAME, user)
            set(CURLOPT_PASSWORD, credentials.password ?? "")
        }
        if status != CURLE_OK {
            throw TransferError(.other, code: Int(status.rawValue),
                                message: "libcurl refused option \(failed.map { String($0.rawValue) } ?? "?"): \(String(cString: curl_easy_strerror(status)))")
        }
    }

    private static func list(_ lines: [String]) -> UnsafeMutablePointer<curl_slist>? {
        var list: UnsafeMutablePointer<curl_slist>?
        for line in lines { list = curl_slist_append(list, line) }
        return list
    }

    /// Frees what libcurl no longer needs once the transfer is over. Called once, on the loop thread
    /// (or before the transfer was ever queued).
    func releaseResources() {
        curl_slist_free_all(headerList)
        curl_slist_free_all(quoteList)
        curl_slist_free_all(postQuoteList)
        headerList = nil
        quoteList = nil
        postQuoteList = nil
        retained?.release()
        retained = nil
    }

    func outcome(_ code: CURLcode) -> Result<TransferResponse, Error> {
        if code == CURLE_OK {
            var status = 0
            _ = a67_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
            var length: curl_off_t = -1
            _ = a67_curl_getinfo_off(handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length)
            return .success(TransferResponse(status: status, headers: headers, body: body,
                                             contentLength: length >= 0 ? Int(length) : nil, sshHostKeySHA256: hostKey))
        }
        if cancelled.load(ordering: .relaxed) { return .failure(CancellationError()) }
        var microseconds: curl_off_t = -1
        _ = a67_curl_getinfo_off(handle, CURLINFO_TOTAL_TIME_T, &microseconds)
        let detail = String(cString: errorBuffer)
        let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        return .failure(TransferError(tooLarge ? .responseTooLarge : Self.kind(of: code), code: Int(code.rawValue),
                                      message: tooLarge ? "the response is larger than \(request.limits.maxResponseBytes) bytes" : message,
                                      sshHostKeySHA256: hostKey, seconds: microseconds >= 0 ? Double(microseconds) / 1e6 : nil))
    }

    private static func kind(of code: CURLcode) -> TransferError.Kind {
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT: return .unreachable
        case CURLE_OPERATION_TIMEDOUT: return .timedOut
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_SSL_CONNECT_ERROR,
             CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_READ_ERROR, CURLE_AGAIN:
            return .interrupted
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_PINNEDPUBKEYNOTMATCH: return .untrustedPeer
        case CURLE_LOGIN_DENIED: return .loginDenied
        case CURLE_REMOTE_FILE_NOT_FOUND: return .notFound
        case CURLE_REMOTE_ACCESS_DENIED: return .accessDenied
        case CURLE_QUOTE_ERROR: return .commandFailed
        case CURLE_REMOTE_DISK_FULL: return .full
        case CURLE_ABORTED_BY_CALLBACK: return .cancelled
        default: return .other
        }
    }

    // MARK: Callbacks (run on the loop thread)

    fileprivate func received(_ data: UnsafeRawBufferPointer) -> Bool {
        guard body.count + data.count <= request.limits.maxResponseBytes else {
            tooLarge = true
            return false
        }
        body.append(contentsOf: data)
        return true
    }

    fileprivate func receivedHeader(_ line: String) {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("HTTP/") {
            headers.removeAll() // a new response (after 100 Continue or a redirect)
            return
        }
        guard let colon = trimmed.firstIndex(of: ":") else { return }
        let name = String(trimmed[..<colon])
        let value = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        headers.append(HTTPHeader(name, value))
        if name.caseInsensitiveCompare("Content-Length") == .orderedSame, let length = Int(value),
           length <= request.limits.maxResponseBytes, request.method != .head {
            body.reserveCapacity(length)
        }
    }

    fileprivate func fillUpload(_ buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let upload = request.body, uploadOffset < upload.count else { return 0 }
        let count = min(buffer.count, upload.count - uploadOffset)
        upload.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[uploadOffset..<(uploadOffset + count)]))
        }
        uploadOffset += count
        return count
    }

    fileprivate func seekUpload(to offset: Int) -> Bool {
        guard let upload = request.body, offset >= 0, offset <= upload.count else { return false }
        uploadOffset = offset
        return true
    }

    fileprivate func checkHostKey(_ key: UnsafeRawBufferPointer) -> Bool {
        let fingerprint = Fingerprint.sha256Base64(key)
        hostKey = fingerprint
        guard let pinned = request.trust.sshHostKeySHA256 else { return true }
        return pinned == fingerprint
    }
}

private func context(_ pointer: UnsafeMutableRawPointer?) -> Transfer {
    Unmanaged<Transfer>.fromOpaque(pointer!).takeUnretainedValue()
}

private let writeCallback: a67_curl_data_callback = { buffer, size, count, pointer in
    let bytes = size * count
    guard let buffer, bytes > 0 else { return 0 }
    return context(pointer).received(UnsafeRawBufferPointer(start: buffer, count: bytes)) ? bytes : 0
}

private let headerCallback: a67_curl_data_callback = { buffer, size, count, pointer in
    let bytes = size * count
    guard let buffer else { return 0 }
    context(pointer).receivedHeader(String(decoding: UnsafeRawBufferPointer(start: buffer, count: bytes), as: UTF8.self))
    return bytes
}

private let readCallback: a67_curl_data_callback = { buffer, size, count, pointer in
    guard let buffer else { return 0 }
    return context(pointer).fillUpload(UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
}

private let seekCallback: a67_curl_seek_callback = { pointer, offset, origin in
    guard origin == SEEK_SET else { return Int32(CURL_SEEKFUNC_CANTSEEK) }
    return context(pointer).seekUpload(to: Int(offset)) ? Int32(CURL_SEEKFUNC_OK) : Int32(CURL_SEEKFUNC_FAIL)
}

private let progressCallback: a67_curl_xferinfo_callback = { pointer, _, _, _, _ in
    context(pointer).cancelled.load(ordering: .relaxed) ? 1 : 0
}

private let hostKeyCallback: a67_curl_hostkey_callback = { pointer, _, key, length in
    guard let key else { return Int32(CURLKHMATCH_MISMATCH.rawValue) }
    let ok = context(pointer).checkHostKey(UnsafeRawBufferPointer(start: key, count: length))
    return Int32(ok ? CURLKHMATCH_OK.rawValue : CURLKHMATCH_MISMATCH.rawValue)
}
