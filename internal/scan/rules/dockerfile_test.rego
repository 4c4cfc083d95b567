package warden.dockerfile.builtin_test

import data.warden.dockerfile.builtin

df(stages, ins) := {"stages": stages, "instructions": ins}

ids(doc) := {f.id | some f in builtin.deny with input as doc}

pinned := {"index": 0, "name": "", "image": "alpine:3@sha256:0000000000000000000000000000000000000000000000000000000000000000", "line": 1}

test_no_user_is_root if "DF001" in ids(df([pinned], []))

test_numeric_user_passes if not "DF001" in ids(df([pinned], [{"cmd": "user", "args": ["65532:65532"], "flags": [], "line": 2, "stage": 0}]))

test_user_zero_is_root if "DF001" in ids(df([pinned], [{"cmd": "user", "args": ["0"], "flags": [], "line": 2, "stage": 0}]))

test_secret_arg if "DF002" in ids(df([pinned], [{"cmd": "arg", "args": ["NPM_TOKEN"], "kv": [{"key": "NPM_TOKEN", "value": "", "hasValue": false}], "flags": [], "line": 2, "stage": 0}]))

test_token_path_is_not_a_secret if not "DF002" in ids(df([pinned], [{"cmd": "env", "args": ["TOKEN_PATH"], "kv": [{"key": "TOKEN_PATH", "value": "/t", "hasValue": true}], "flags": [], "line": 2, "stage": 0}]))

test_remote_add if "DF003" in ids(df([pinned], [{"cmd": "add", "args": ["https://x.example/a", "/a"], "flags": [], "line": 2, "stage": 0}]))

test_unpinned_base if "DF004" in ids(df([{"index": 0, "name": "", "image": "alpine:3", "line": 1}], []))
