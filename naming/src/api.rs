//! The public HTTP API of SPEC.md: one match on (method, path), decoding
//! names once and translating between HTTP and the domain modules.

use std::io::{self, Read};
use std::sync::Arc;

use common::api::{ClusterStatus, MTIME_HEADER};
use common::cluster_auth::{self, Verifier};
use common::limits::BATCH_CHUNKS_MAX;
use common::name::FileName;
use common::percent;
use common::server::{
    self, Handler, Reply, STATUS_CREATED, STATUS_NO_CONTENT, STATUS_OK, STATUS_PARTIAL_CONTENT,
    STATUS_RANGE_NOT_SATISFIABLE, ServerStats,
};
use tiny_http::{Method, Request};

use crate::download;
use crate::error::ApiError;
use crate::limits::{FAILED_UPLOAD_DRAIN_BYTES_MAX, LIST_PAGE_DEFAULT, LIST_PAGE_MAX};
use crate::metadata::change::Refusal;
use crate::metadata::version::FileVersion;
use crate::metrics;
use crate::naming::Naming;
use crate::range::{self, RangeAsk};
use crate::tokens::{ApiTokens, Permission, TokenError};
use crate::upload;

pub struct Api {
    pub naming: Arc<Naming>,
    pub stats: Arc<ServerStats>,
    /// Checks a storage server's registration (`POST /servers`) for
    /// cluster credentials; `None` with `--insecure`.
    pub cluster_verifier: Option<Verifier>,
    /// The public API's tokens; `None`: open to all.
    pub tokens: Option<Arc<ApiTokens>>,
}

impl Handler for Api {
    fn handle(&self, request: &mut Request) -> Reply {
        let mut principal = None;
        let outcome = self.route(request, &mut principal);
        server::reply_for(request, outcome).with_principal(principal.as_deref())
    }

    fn endpoint(&self, request: &Request) -> &'static str {
        let path = server::url_path(request);
        if path.starts_with("/files/") {
            return "/files/{name}";
        }
        if path.starts_with("/stat/") {
            return "/stat/{name}";
        }
        if path.starts_with("/dirs/") {
            return "/dirs/{name}";
        }
        match path {
            "/files" => "/files",
            "/status" => "/status",
            "/drain" => "/drain",
            "/rename" => "/rename",
            "/servers" => "/servers",
            "/health" => "/health",
            "/metrics" => "/metrics",
            "/" => "/",
            _ => "other",
        }
    }
}

impl Api {
    /// Answers `request`; `principal` learns the label of the API token
    /// it came with, for its log line.
    fn route(
        &self,
        request: &mut Request,
        principal: &mut Option<String>,
    ) -> Result<Reply, ApiError> {
        let path = server::url_path(request).to_owned();
        let method = request.method().clone();
        *principal = self.authorize(request, &method, &path)?;
        if !matches!(path.as_str(), "/health" | "/metrics" | "/") {
            // See every change acknowledged before this request, by this
            // naming server or another sharing the metadata store.
            self.naming.store().sync()?;
        }
        if let Some(raw_name) = path.strip_prefix("/files/") {
            let name = parse_name(raw_name)?;
            return match method {
                Method::Put => self.create(request, name),
                Method::Get => self.read(request, name, false),
                Method::Head => self.read(request, name, true),
                Method::Delete => self.delete(&name),
                _ => Err(ApiError::MethodNotAllowed),
            };
        }
        if let Some(raw_name) = path.strip_prefix("/dirs/") {
            return self.dir(&method, raw_name);
        }
        if let Some(raw_name) = path.strip_prefix("/stat/") {
            let name = parse_name(raw_name)?;
            return match method {
                Method::Get => self.stat(&name),
                _ => Err(ApiError::MethodNotAllowed),
            };
        }
        match (method, path.as_str()) {
            (Method::Get, "/files") => self.list(request),
            (Method::Get, "/status") => Ok(Reply::json(STATUS_OK, &self.status())),
            (Method::Post, "/drain") => self.drain(request),
            (Method::Post, "/rename") => self.rename(request),
            (Method::Post, "/servers") => self.join(request),
            (Method::Get | Method::Head, "/health") => {
                Ok(Reply::bytes(STATUS_OK, "text/plain", b"ok\n".to_vec()))
            }
            (Method::Get | Method::Head, "/") => Ok(crate::ui::page()),
            (Method::Get, "/metrics") => Ok(Reply::bytes(
                STATUS_OK,
                "text/plain; version=0.0.4",
                metrics::render(&self.naming, &self.stats).into_bytes(),
            )),
            (
                _,
                "/" | "/files" | "/status" | "/health" | "/metrics" | "/drain" | "/servers"
                | "/rename",
            ) => Err(ApiError::MethodNotAllowed),
            _ => Err(ApiError::NoRoute),
        }
    }

    fn create(&self, request: &mut Request, name: FileName) -> Result<Reply, ApiError> {
        let overwrite = overwrite_param(request)?;
        let declared_bytes = request.body_length().map(|len| len as u64);
        if declared_bytes.is_none() && !server::is_chunked(request) {
            return Err(ApiError::LengthRequired);
        }
        let reservation = upload::reserve(&self.naming, name, overwrite, declared_bytes)?;
        // Only now is the body read (and `100 Continue` sent when asked for).
        let created = reservation.upload(request.as_reader()).inspect_err(|_| {
            // Every error of `upload` comes once the body has begun to arrive
            // (refusals before it, 409 and 413, are `reserve`'s): read on, so
            // that a client still sending hears why instead of a reset.
            let _ = io::copy(
                &mut request.as_reader().take(FAILED_UPLOAD_DRAIN_BYTES_MAX),
                &mut io::sink(),
            );
        })?;
        Ok(Reply::json(STATUS_CREATED, &created))
    }

    /// GET or HEAD of a file, whole or the one range its `Range` asks.
    fn read(&self, request: &Request, name: FileName, head_only: bool) -> Result<Reply, ApiError> {
        let version = self
            .naming
            .metadata()
            .get(&name)
            .ok_or(ApiError::NotFound { name })?;
        let size_bytes = version.size_bytes;
        let (status, bytes) = match range::parse(server::header(request, "Range"), size_bytes) {
            RangeAsk::Whole => (STATUS_OK, 0..size_bytes),
            RangeAsk::Part(part) => (STATUS_PARTIAL_CONTENT, part),
            RangeAsk::Unsatisfiable => {
                return Ok(Reply::error(
                    STATUS_RANGE_NOT_SATISFIABLE,
                    format!("the range is past the end of the file ({size_bytes} bytes)"),
                )
                .with_header("Content-Range", format!("bytes */{size_bytes}"))
                .with_header("Accept-Ranges", "bytes"));
            }
        };
        let len = bytes.end - bytes.start;
        let mtime_ms = version.mtime_ms;
        let ranged = |reply: Reply| {
            // The modification time both ways: the HTTP date caches and
            // `curl -R` read, and to the millisecond as the JSON documents
            // give it (the mount's attributes agree with listings).
            let reply = reply
                .with_header("Accept-Ranges", "bytes")
                .with_header("Last-Modified", common::time::http_date(mtime_ms))
                .with_header(MTIME_HEADER, common::time::from_unix_ms(mtime_ms));
            match status {
                STATUS_PARTIAL_CONTENT => {
                    reply.with_header("Content-Range", range::content_range(&bytes, size_bytes))
                }
                _ => reply,
            }
        };
        if head_only {
            return Ok(ranged(Reply::stream(
                status,
                "application/octet-stream",
                Box::new(io::empty()),
                Some(len),
            )));
        }
        Ok(ranged(download::answer(
            Arc::clone(&self.naming),
            version,
            bytes.clone(),
            status,
        )?))
    }

    /// `POST /rename?from=A&to=B[&overwrite=true]`; a `from` ending in `/`
    /// renames the whole directory (`to` must end in `/` too).
    fn rename(&self, request: &Request) -> Result<Reply, ApiError> {
        let param = |key: &str| -> Result<String, ApiError> {
            decoded_param(request, key)?
                .ok_or_else(|| ApiError::BadRequest(format!("a rename needs ?{key}=")))
        };
        let (from, to) = (param("from")?, param("to")?);
        let overwrite = overwrite_param(request)?;
        if from.ends_with('/') {
            if overwrite {
                return Err(ApiError::BadRequest(
                    "a directory rename never overwrites".to_owned(),
                ));
            }
            let count = self
                .naming
                .rename_prefix(&from, &to)
                .map_err(|refusal| match refusal {
                    Refusal::NoSuchFile => ApiError::NoSuchDirectory {
                        prefix: from.clone(),
                    },
                    Refusal::NameTaken => ApiError::TargetsExist { prefix: to.clone() },
                    Refusal::BadRename(detail) => ApiError::BadRequest(detail),
                    other => ApiError::from(other),
                })?;
            return Ok(Reply::json(
                STATUS_OK,
                &serde_json::json!({ "from": from, "to": to, "renamed": count }),
            ));
        }
        let from = FileName::parse(&from).map_err(ApiError::BadName)?;
        let to = FileName::parse(&to).map_err(ApiError::BadName)?;
        let replaced =
            self.naming
                .rename(&from, &to, overwrite)
                .map_err(|refusal| match refusal {
                    Refusal::NoSuchFile => ApiError::NotFound { name: from.clone() },
                    Refusal::NameTaken => ApiError::Exists { name: to.clone() },
                    other => ApiError::from(other),
                })?;
        if let Some(replaced) = replaced {
            self.naming.garbage.drop_version(replaced);
        }
        Ok(Reply::json(
            STATUS_OK,
            &serde_json::json!({ "from": from.as_str(), "to": to.as_str(), "renamed": 1 }),
        ))
    }

    fn delete(&self, name: &FileName) -> Result<Reply, ApiError> {
        let removed = self
            .naming
            .delete(name)?
            .ok_or_else(|| ApiError::NotFound { name: name.clone() })?;
        self.naming.garbage.drop_version(removed);
        self.naming
            .metrics
            .count(&self.naming.metrics.files_deleted_total, 1);
        Ok(Reply::empty(STATUS_NO_CONTENT))
    }

    fn list(&self, request: &Request) -> Result<Reply, ApiError> {
        let param = |key: &str| decoded_param(request, key);
        let prefix = param("prefix")?.unwrap_or_default();
        match param("delimiter")?.as_deref() {
            None => {
                let entries = self.naming.metadata().list(&prefix);
                Ok(Reply::json(STATUS_OK, &entries))
            }
            Some("/") => {
                let limit = match param("limit")? {
                    None => LIST_PAGE_DEFAULT,
                    Some(raw) => match raw.parse::<usize>() {
                        Ok(limit @ 1..=LIST_PAGE_MAX) => limit,
                        _ => {
                            return Err(ApiError::BadRequest(format!(
                                "limit must be a whole number from 1 to {LIST_PAGE_MAX}"
                            )));
                        }
                    },
                };
                let after = param("after")?;
                let level = self
                    .naming
                    .metadata()
                    .list_level(&prefix, after.as_deref(), limit);
                Ok(Reply::json(
                    STATUS_OK,
                    &serde_json::json!({
                        "files": level.files,
                        "dirs": level.dirs,
                        "next": level.next,
                    }),
                ))
            }
            Some(other) => Err(ApiError::BadRequest(format!(
                "the only delimiter is /, not {other:?}"
            ))),
        }
    }

    /// `POST /dirs/NAME` and `DELETE /dirs/NAME`.
    fn dir(&self, method: &Method, raw_name: &str) -> Result<Reply, ApiError> {
        // `a/b` and `a/b/` (either way encoded) name the same directory.
        let decoded =
            percent::decode(raw_name).map_err(|err| ApiError::BadRequest(err.to_string()))?;
        let name = FileName::parse(decoded.trim_end_matches('/')).map_err(ApiError::BadName)?;
        let path = format!("{name}/");
        match method {
            Method::Post => {
                self.naming
                    .make_dir(&path)
                    .map_err(|refusal| match refusal {
                        Refusal::NameTaken => ApiError::DirExists { path: path.clone() },
                        other => ApiError::from(other),
                    })?;
                Ok(Reply::json(
                    STATUS_CREATED,
                    &serde_json::json!({ "dir": path }),
                ))
            }
            Method::Get | Method::Head => match self.naming.metadata().dir_exists(&path) {
                true => Ok(Reply::json(STATUS_OK, &serde_json::json!({ "dir": path }))),
                false => Err(ApiError::NoSuchDirectory { prefix: path }),
            },
            Method::Delete => {
                self.naming
                    .remove_dir(&path, false)
                    .map_err(|refusal| match refusal {
                        Refusal::NotEmpty => ApiError::DirNotEmpty { path: path.clone() },
                        Refusal::NoSuchFile => ApiError::NoSuchDirectory {
                            prefix: path.clone(),
                        },
                        other => ApiError::from(other),
                    })?;
                Ok(Reply::empty(STATUS_NO_CONTENT))
            }
            _ => Err(ApiError::MethodNotAllowed),
        }
    }

    fn stat(&self, name: &FileName) -> Result<Reply, ApiError> {
        let version = self
            .naming
            .metadata()
            .get(name)
            .ok_or_else(|| ApiError::NotFound { name: name.clone() })?;
        let urls = self.naming.metadata().server_urls();
        let reader = StatReader {
            name: name.to_string(),
            version,
            urls,
            next_index: 0,
            piece: 0,
            piece_index: 0,
            started: false,
            text: Vec::new(),
            text_pos: 0,
        };
        Ok(Reply::stream(
            STATUS_OK,
            "application/json",
            Box::new(reader),
            None,
        ))
    }

    /// `POST /drain?server=URL`: the server takes no new chunks and its
    /// chunks are copied elsewhere; `status` shows its placed chunks fall.
    fn drain(&self, request: &Request) -> Result<Reply, ApiError> {
        let url = decoded_param(request, "server")?
            .ok_or_else(|| ApiError::BadRequest("drain needs ?server=URL".to_owned()))?;
        let url = url.trim_end_matches('/').to_owned();
        self.naming
            .drain(&url)?
            .ok_or_else(|| ApiError::UnknownServer { url: url.clone() })?;
        Ok(Reply::json(
            STATUS_OK,
            &serde_json::json!({ "server": url, "draining": true }),
        ))
    }

    /// `POST /servers?url=URL`: a storage server started with `--join`
    /// registers itself; the cluster grows without a restart.
    /// The one check of who may do what, before anything is read or done:
    /// with tokens on, every endpoint but `/health` needs a token with the
    /// permission of `needed_permission`; `POST /servers` (a storage server
    /// registering, which is then sent replicas) needs cluster credentials
    /// or, with tokens on, an admin token.
    /// Ok with the label of the API token that allows the request (`None`
    /// when no token is needed or the cluster's credentials allowed it).
    fn authorize(
        &self,
        request: &Request,
        method: &Method,
        path: &str,
    ) -> Result<Option<String>, ApiError> {
        let Some(needs) = needed_permission(method, path) else {
            return Ok(None);
        };
        let header = server::header(request, "Authorization");
        let registering = *method == Method::Post && path == "/servers";
        let by_cluster = header.is_some_and(|value| value.starts_with(cluster_auth::SCHEME));
        if registering {
            match &self.cluster_verifier {
                Some(verifier) if by_cluster || self.tokens.is_none() => {
                    return verifier
                        .check(header, method.as_str(), request.url())
                        .map(|()| None)
                        .map_err(|err| ApiError::Unauthorized(err.to_string()));
                }
                None if self.tokens.is_none() => return Ok(None),
                // Without a cluster secret only an admin token registers.
                _ => {}
            }
        }
        let Some(tokens) = &self.tokens else {
            return Ok(None);
        };
        tokens.authorize(header, needs).map(Some).map_err(|err| {
            // The label names the token; the token itself is never logged.
            log::warn!("refused {method} {path}: {err}");
            match err {
                TokenError::Missing | TokenError::Unknown => {
                    ApiError::Unauthorized(err.to_string())
                }
                TokenError::Insufficient { .. } => ApiError::Forbidden(err.to_string()),
            }
        })
    }

    fn join(&self, request: &Request) -> Result<Reply, ApiError> {
        let url = decoded_param(request, "url")?
            .ok_or_else(|| ApiError::BadRequest("joining needs ?url=URL".to_owned()))?;
        let url = common::config::parse_base_url(&url)
            .map_err(|err| ApiError::BadRequest(format!("{url:?} {err}")))?;
        let id = self.naming.join(&url)?;
        Ok(Reply::json(
            STATUS_OK,
            &serde_json::json!({ "url": url, "id": id }),
        ))
    }

    fn status(&self) -> ClusterStatus {
        let cluster = &self.naming.cluster;
        let mut servers = self.naming.server_rows();
        let metadata = self.naming.metadata();
        for run in metadata.pieces().flat_map(|piece| piece.runs.iter()) {
            for &id in run.replicas.iter() {
                servers[usize::from(id)].placed_chunks += u64::from(run.count);
            }
        }
        let (files, chunks) = (metadata.files_count(), metadata.chunks_count());
        drop(metadata);
        let under_replicated = self.naming.under_replicated_chunks();
        ClusterStatus {
            servers,
            files,
            chunks,
            under_replicated,
            replication: cluster.replication,
        }
    }
}

fn parse_name(raw: &str) -> Result<FileName, ApiError> {
    let decoded = percent::decode(raw).map_err(|err| ApiError::BadRequest(err.to_string()))?;
    FileName::parse(&decoded).map_err(ApiError::BadName)
}

/// Streams a stat document: one JSON object per chunk would make a 4 GiB
/// file's answer hundreds of MB, so it is produced a batch of chunks at a time.
struct StatReader {
    name: String,
    version: Arc<FileVersion>,
    urls: Vec<std::sync::Arc<str>>,
    /// The next chunk, by its index in the file and in its piece.
    next_index: u64,
    piece: usize,
    piece_index: u64,
    started: bool,
    text: Vec<u8>,
    text_pos: usize,
}

impl StatReader {
    fn refill(&mut self) {
        self.text.clear();
        self.text_pos = 0;
        let chunks_count = self.version.chunks_count();
        if !self.started {
            self.started = true;
            let head = serde_json::json!({
                "name": self.name,
                "size": self.version.size_bytes,
                "mtime": common::time::from_unix_ms(self.version.mtime_ms),
                "chunk_count": chunks_count,
            });
            let head = head.to_string();
            // `{"a":..,"size":..}` without its closing brace, then the chunks array.
            self.text
                .extend_from_slice(&head.as_bytes()[..head.len() - 1]);
            self.text.extend_from_slice(b",\"chunks\":[");
            if chunks_count == 0 {
                self.text.extend_from_slice(b"]}");
            }
            return;
        }
        if self.next_index >= chunks_count {
            return;
        }
        // Chunks are numbered through the file, piece after piece.
        let end = (self.next_index + BATCH_CHUNKS_MAX as u64).min(chunks_count);
        while self.next_index < end {
            let piece = &self.version.pieces[self.piece];
            if self.piece_index >= piece.chunks_count() {
                self.piece += 1;
                self.piece_index = 0;
                continue;
            }
            let replicas: Vec<&str> = piece
                .run_of(self.piece_index)
                .replicas
                .iter()
                .map(|&id| &*self.urls[usize::from(id)])
                .collect();
            let size = piece.chunk_size(self.piece_index);
            let row =
                serde_json::json!({ "index": self.next_index, "size": size, "replicas": replicas });
            if self.next_index > 0 {
                self.text.push(b',');
            }
            self.text.extend_from_slice(row.to_string().as_bytes());
            self.next_index += 1;
            self.piece_index += 1;
        }
        if end == chunks_count {
            self.text.extend_from_slice(b"]}");
        }
    }
}

impl Read for StatReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.text_pos == self.text.len() {
            self.refill();
        }
        let available = &self.text[self.text_pos..];
        let copied = available.len().min(out.len());
        out[..copied].copy_from_slice(&available[..copied]);
        self.text_pos += copied;
        Ok(copied)
    }
}

/// What a request needs of a token (`None`: open to all, `/health` alone).
/// Unknown routes need `read`, so a stranger learns nothing of the API.
/// `?overwrite=true|false` (absent: false).
fn overwrite_param(request: &Request) -> Result<bool, ApiError> {
    match server::query_param(request, "overwrite") {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "overwrite must be true or false, not {other:?}"
        ))),
    }
}

/// The percent-decoded value of the query parameter `key`, if given.
fn decoded_param(request: &Request, key: &str) -> Result<Option<String>, ApiError> {
    server::query_param(request, key)
        .map(|raw| percent::decode(raw).map_err(|err| ApiError::BadRequest(err.to_string())))
        .transpose()
}

fn needed_permission(method: &Method, path: &str) -> Option<Permission> {
    match (method, path) {
        // The web UI's page holds no data; what it reads needs a token.
        (Method::Get | Method::Head, "/health" | "/") => None,
        (Method::Post, "/drain" | "/servers") => Some(Permission::Admin),
        (Method::Put | Method::Delete | Method::Post, _) => Some(Permission::Write),
        _ => Some(Permission::Read),
    }
}
