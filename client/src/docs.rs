//! What the client says about itself, from one table: the usage lines of
//! `harbour --help`, each command's `harbour COMMAND --help` (with
//! examples), and the shell completions of `harbour completions SHELL`.

/// One command, as its help and the completions describe it.
pub struct CommandDoc {
    pub name: &'static str,
    /// Its arguments and flags, after `harbour NAME`.
    pub synopsis: &'static str,
    pub about: &'static str,
    /// Flags of its own (beside the global ones).
    pub flags: &'static [&'static str],
    pub examples: &'static [&'static str],
    /// What else its help says, after the examples.
    pub notes: Option<&'static str>,
}

pub const COMMANDS: &[CommandDoc] = &[
    CommandDoc {
        name: "create",
        synopsis: "NAME LOCAL_PATH [--overwrite] [--quiet]",
        about: "upload LOCAL_PATH (\"-\": stdin) as NAME, all or nothing",
        flags: &["--overwrite", "--quiet"],
        examples: &[
            "harbour create notes/hello.txt ./hello.txt",
            "tar c photos | harbour create backups/photos.tar - --overwrite",
        ],
        notes: None,
    },
    CommandDoc {
        name: "read",
        synopsis: "NAME OUT_PATH [--quiet]",
        about: "download NAME into OUT_PATH (\"-\": stdout); never a partial file",
        flags: &["--quiet"],
        examples: &[
            "harbour read notes/hello.txt ./copy.txt",
            "harbour read backups/photos.tar - | tar x",
        ],
        notes: None,
    },
    CommandDoc {
        name: "size",
        synopsis: "NAME",
        about: "print NAME's size in bytes",
        flags: &[],
        examples: &["harbour size notes/hello.txt"],
        notes: None,
    },
    CommandDoc {
        name: "delete",
        synopsis: "NAME [--quiet]",
        about: "delete NAME",
        flags: &["--quiet"],
        examples: &["harbour delete notes/hello.txt"],
        notes: None,
    },
    CommandDoc {
        name: "mv",
        synopsis: "FROM TO [--overwrite]",
        about: "rename FROM to TO at once, moving no data; FROM ending in / renames a directory",
        flags: &["--overwrite", "--quiet"],
        examples: &[
            "harbour mv notes/draft.txt notes/final.txt",
            "harbour mv photos/2025/ archive/2025/",
        ],
        notes: None,
    },
    CommandDoc {
        name: "mkdir",
        synopsis: "NAME",
        about: "make the directory NAME (directories also exist while a name lies under them)",
        flags: &["--quiet"],
        examples: &["harbour mkdir photos/2026"],
        notes: None,
    },
    CommandDoc {
        name: "rmdir",
        synopsis: "NAME",
        about: "remove the empty directory NAME",
        flags: &["--quiet"],
        examples: &["harbour rmdir photos/2026"],
        notes: None,
    },
    CommandDoc {
        name: "list",
        synopsis: "[PREFIX] [-l] [--bytes]",
        about: "one file per line with its size (-l: sizes first, in KiB, MiB...)",
        flags: &["-l", "--long", "--bytes"],
        examples: &["harbour list", "harbour list notes/ -l"],
        notes: None,
    },
    CommandDoc {
        name: "stat",
        synopsis: "NAME [--bytes]",
        about: "NAME's size, chunks and the servers holding each",
        flags: &["--bytes"],
        examples: &[
            "harbour stat notes/hello.txt",
            "harbour stat notes/hello.txt --json",
        ],
        notes: None,
    },
    CommandDoc {
        name: "status",
        synopsis: "[--bytes]",
        about: "the storage servers: alive, space, chunks; under-replicated chunks",
        flags: &["--bytes"],
        examples: &["harbour status", "harbour status --json"],
        notes: None,
    },
    CommandDoc {
        name: "drain",
        synopsis: "STORAGE_URL",
        about: "move every chunk off a storage server before removing it",
        flags: &[],
        examples: &["harbour drain http://storage3:8001"],
        notes: None,
    },
    CommandDoc {
        name: "bench",
        synopsis: "[--files N] [--size BYTES] [--workers N] [--phases P] [--prefix P] [--keep]",
        about: "load test: N files created, read (every byte checked) and deleted",
        flags: &[
            "--files",
            "--size",
            "--workers",
            "--phases",
            "--prefix",
            "--keep",
        ],
        examples: &[
            "harbour bench --files 5000 --size 1KiB --workers 16",
            "harbour bench --files 1 --size 256MiB --json",
        ],
        notes: None,
    },
    CommandDoc {
        name: "mount",
        synopsis: "MOUNTPOINT [--prefix P] [--read-only] [--cache-dir DIR] [--cache-bytes N]",
        about: "mount the cluster (or the directory P) over FUSE, in the foreground",
        flags: &["--prefix", "--read-only", "--cache-dir", "--cache-bytes"],
        examples: &[
            "harbour mount /mnt/harbour",
            "harbour mount ~/photos --prefix photos/ --read-only",
        ],
        notes: Some(MOUNT_NOTES),
    },
    CommandDoc {
        name: "completions",
        synopsis: "bash|zsh|fish",
        about: "print a completion script for the shell",
        flags: &[],
        examples: &[
            "harbour completions bash > ~/.local/share/bash-completion/completions/harbour",
            "harbour completions zsh > ~/.zfunc/_harbour",
            "harbour completions fish > ~/.config/fish/completions/harbour.fish",
        ],
        notes: None,
    },
];

/// What `harbour mount --help` says of the mount's semantics.
const MOUNT_NOTES: &str = "\
It runs until unmounted (fusermount3 -u MOUNTPOINT), or until SIGINT or
SIGTERM, when it uploads what it holds and unmounts.

  --prefix P         mount the directory P of the cluster, not its root
  --read-only        refuse every change (EROFS)
  --cache-dir DIR    where files being written are staged (default: the
                     system's temporary folder)
  --cache-bytes N    the most the staged files may hold at once, e.g. 4GiB
                     (default 16GiB); a write past it fails with ENOSPC

As POSIX: files and directories (names with / are directories), create,
read, write anywhere in a file, append, truncate, unlink, rename of files
and directories (atomic on the server), mkdir, rmdir, readdir, statfs,
fsync. A file being written is staged on local disk and becomes one atomic
create or overwrite on close or fsync: readers elsewhere see the old file or
the new one, never half of it. Errors: ENOENT, EEXIST, ENOTEMPTY, ENOSPC
(cluster full, or the cache), EACCES (token refused), EIO (anything else,
including a naming server that does not answer within --timeout-ms).

Not POSIX: permissions, owners and times are Harbour's own (a file is 0644
and a directory 0755, owned by whoever mounted; chmod, chown and utimes
succeed and change nothing; mtime is when the content was last committed);
no hard links or symlinks (EPERM), no special files, no extended attributes;
locks are local to this machine; writes become visible to other clients at
close or fsync, not before; a file unlinked while open here is gone from
the server at once (what is still written to it goes nowhere).
";

/// Flags every command takes.
pub const GLOBAL_FLAGS: &[&str] = &[
    "--server",
    "--timeout-ms",
    "--token-file",
    "--ca-file",
    "--json",
    "--help",
];

pub fn command_doc(name: &str) -> Option<&'static CommandDoc> {
    COMMANDS.iter().find(|doc| doc.name == name)
}

/// The `Usage:` lines of `harbour --help`.
pub fn usage_lines() -> String {
    let mut text = String::from("Usage:\n");
    for doc in COMMANDS {
        text.push_str(&format!(
            "  harbour {} {}\n      {}\n",
            doc.name, doc.synopsis, doc.about
        ));
    }
    text.push_str("  harbour COMMAND --help\n      what COMMAND does, with examples\n");
    text
}

/// `harbour NAME --help`.
pub fn command_help(doc: &CommandDoc) -> String {
    let mut text = format!(
        "harbour {}: {}\n\nUsage: harbour {} {}\n\nExamples:\n",
        doc.name, doc.about, doc.name, doc.synopsis
    );
    for example in doc.examples {
        text.push_str(&format!("  {example}\n"));
    }
    if let Some(notes) = doc.notes {
        text.push_str(&format!("\n{notes}"));
    }
    text.push_str(
        "\nEvery command also takes --server URL (NAME_SERVER), --timeout-ms, --token-file,\n--ca-file and --json; see harbour --help.\n",
    );
    text
}

/// The completion script for `shell`.
pub fn completions(shell: &str) -> Result<String, String> {
    let names: Vec<&str> = COMMANDS.iter().map(|doc| doc.name).collect();
    match shell {
        "bash" => Ok(bash(&names)),
        "zsh" => Ok(zsh()),
        "fish" => Ok(fish()),
        other => Err(format!("completions for bash, zsh or fish, not {other:?}")),
    }
}

fn bash(names: &[&str]) -> String {
    let mut cases = String::new();
    for doc in COMMANDS {
        let flags: Vec<&str> = doc.flags.iter().chain(GLOBAL_FLAGS).copied().collect();
        cases.push_str(&format!(
            "        {}) opts=\"{}\" ;;\n",
            doc.name,
            flags.join(" ")
        ));
    }
    format!(
        "# bash completion for harbour (harbour completions bash)
_harbour() {{
    local cur=\"${{COMP_WORDS[COMP_CWORD]}}\"
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))
        return
    fi
    local opts
    case \"${{COMP_WORDS[1]}}\" in
{cases}        *) opts=\"{}\" ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))
    else
        COMPREPLY=($(compgen -f -- \"$cur\"))
    fi
}}
complete -o filenames -F _harbour harbour
",
        names.join(" "),
        GLOBAL_FLAGS.join(" ")
    )
}

fn zsh() -> String {
    let mut commands = String::new();
    for doc in COMMANDS {
        commands.push_str(&format!(
            "        '{}:{}'\n",
            doc.name,
            doc.about.replace('\'', "'\\''").replace(':', "\\:")
        ));
    }
    let mut cases = String::new();
    for doc in COMMANDS {
        let flags: Vec<&str> = doc.flags.iter().chain(GLOBAL_FLAGS).copied().collect();
        cases.push_str(&format!(
            "        {}) _arguments '*:file:_files' {} ;;\n",
            doc.name,
            flags
                .iter()
                .map(|flag| format!("'{flag}[]'"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    format!(
        "#compdef harbour
# zsh completion for harbour (harbour completions zsh)
_harbour() {{
    local -a commands
    commands=(
{commands}    )
    if (( CURRENT == 2 )); then
        _describe 'command' commands
        return
    fi
    case $words[2] in
{cases}    esac
}}
_harbour \"$@\"
"
    )
}

fn fish() -> String {
    let mut text = String::from(
        "# fish completion for harbour (harbour completions fish)\ncomplete -c harbour -f\n",
    );
    for doc in COMMANDS {
        text.push_str(&format!(
            "complete -c harbour -n __fish_use_subcommand -a {} -d '{}'\n",
            doc.name,
            doc.about.replace('\'', "\\'")
        ));
        for flag in doc.flags {
            if let Some(long) = flag.strip_prefix("--") {
                text.push_str(&format!(
                    "complete -c harbour -n '__fish_seen_subcommand_from {}' -l {long}\n",
                    doc.name
                ));
            }
        }
    }
    for flag in GLOBAL_FLAGS {
        if let Some(long) = flag.strip_prefix("--") {
            text.push_str(&format!("complete -c harbour -l {long}\n"));
        }
    }
    text.push_str("complete -c harbour -n 'not __fish_use_subcommand' -F\n");
    text
}

#[cfg(test)]
mod tests {
    use super::{COMMANDS, command_help, completions};

    #[test]
    fn every_command_has_an_example_that_names_it() {
        for doc in COMMANDS {
            assert!(!doc.examples.is_empty(), "{}", doc.name);
            let call = format!("harbour {}", doc.name);
            for example in doc.examples {
                let names_it = example.ends_with(&call) || example.contains(&format!("{call} "));
                assert!(names_it, "{example}");
            }
            assert!(command_help(doc).contains("Examples:"));
        }
    }

    #[test]
    fn completions_name_every_command() {
        for shell in ["bash", "zsh", "fish"] {
            let script = completions(shell).unwrap_or_default();
            for doc in COMMANDS {
                assert!(script.contains(doc.name), "{shell}: {}", doc.name);
            }
        }
        assert!(completions("csh").is_err());
    }
}
