-- Macros sent by the MTA reach the filter; the TypeScript side asserts what it recorded.
--   FILTERCTL_MILTER_PORT=PORT miltertest -s test/miltertest/macros.lua
local port = os.getenv("FILTERCTL_MILTER_PORT")
if port == nil or port == "" then error("FILTERCTL_MILTER_PORT is not set") end
local function check(condition, what)
  if not condition then error("check failed: " .. what, 2) end
end

-- Errors raised inside miltertest's own functions are not always printed: report them here.
local function main()
  local conn = mt.connect("inet:" .. port .. "@127.0.0.1", 20, 0.1)
  check(conn ~= nil, "connect to the milter on port " .. port)
  check(mt.negotiate(conn, nil, nil, nil) == nil, "negotiate")
  check(mt.test_action(conn, SMFIF_SETSYMLIST), "the filter asked for macro lists")

  mt.macro(conn, SMFIC_CONNECT, "j", "mx.test.example", "{daemon_name}", "filterctl-e2e", "{client_addr}", "192.0.2.10")
  check(mt.conninfo(conn, "client.example", "192.0.2.10") == nil, "conninfo")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "connect answered CONTINUE")
  check(mt.helo(conn, "client.example") == nil, "helo")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "helo answered CONTINUE")

  mt.macro(conn, SMFIC_MAIL, "i", "QID0001", "{auth_authen}", "alice", "{auth_type}", "PLAIN",
    "{mail_addr}", "alice@example.org")
  check(mt.mailfrom(conn, "<alice@example.org>", "SIZE=1234", "BODY=8BITMIME") == nil, "mailfrom")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "mail answered CONTINUE")

  mt.macro(conn, SMFIC_RCPT, "i", "QID0001", "{rcpt_addr}", "bob@example.net", "{rcpt_mailer}", "smtp")
  check(mt.rcptto(conn, "<bob@example.net>", "NOTIFY=NEVER") == nil, "rcptto")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "rcpt answered CONTINUE")

  check(mt.data(conn) == nil, "data")
  check(mt.header(conn, "Subject", "macros") == nil, "header")
  check(mt.eoh(conn) == nil, "eoh")
  check(mt.bodystring(conn, "macro test body\r\n") == nil, "body")
  -- The end-of-message stage has no Lua constant: its command byte is 'E'.
  mt.macro(conn, string.byte("E"), "i", "QID0001", "{msg_id}", "<macros@example.org>")
  check(mt.eom(conn) == nil, "eom")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "eom answered CONTINUE")
  check(mt.eom_check(conn, MT_HDRADD, "X-Filterctl-Test", "passed"), "X-Filterctl-Test added")

  -- A second message without authentication: nothing of the first MAIL's macros may remain.
  check(mt.abort(conn) == nil, "abort")
  check(mt.mailfrom(conn, "<carol@example.org>") == nil, "mailfrom 2")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "mail 2 answered CONTINUE")
  check(mt.rcptto(conn, "<dave@example.net>") == nil, "rcptto 2")
  check(mt.eom(conn) == nil, "eom 2")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "eom 2 answered CONTINUE")
  mt.disconnect(conn)
  mt.echo("macros: all checks passed")
end

local ok, err = pcall(main)
if not ok then
  io.stderr:write("FAILED: " .. tostring(err) .. "\n")
  os.exit(1)
end
