-- Several transactions on one milter connection: an aborted one (RSET), one completed, and
-- one started by MAIL right after end of message without an abort (Sendmail's way).
--   FILTERCTL_MILTER_PORT=PORT miltertest -s test/miltertest/transactions.lua
local port = os.getenv("FILTERCTL_MILTER_PORT")
if port == nil or port == "" then error("FILTERCTL_MILTER_PORT is not set") end
local function check(condition, what)
  if not condition then error("check failed: " .. what, 2) end
end

-- Errors raised inside miltertest's own functions are not always printed: report them here.
local function main()
  local conn = mt.connect("inet:" .. port .. "@127.0.0.1", 20, 0.1)
  check(conn ~= nil, "connect to the milter on port " .. port)
  check(mt.conninfo(conn, "client.example", "192.0.2.30") == nil, "conninfo")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "connect answered CONTINUE")
  check(mt.helo(conn, "client.example") == nil, "helo")

  -- 1. Started, then abandoned (RSET).
  check(mt.mailfrom(conn, "<first@example.org>") == nil, "mailfrom 1")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "mail 1 answered CONTINUE")
  check(mt.rcptto(conn, "<dropped@example.net>") == nil, "rcptto 1")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "rcpt 1 answered CONTINUE")
  check(mt.abort(conn) == nil, "abort 1")

  -- 2. Completed: the aborted recipient must not be part of it.
  check(mt.mailfrom(conn, "<second@example.org>") == nil, "mailfrom 2")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "mail 2 answered CONTINUE")
  check(mt.rcptto(conn, "<kept@example.net>") == nil, "rcptto 2")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "rcpt 2 answered CONTINUE")
  check(mt.header(conn, "Subject", "second") == nil, "header 2")
  check(mt.eoh(conn) == nil, "eoh 2")
  check(mt.bodystring(conn, "second\r\n") == nil, "body 2")
  check(mt.eom(conn) == nil, "eom 2")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "eom 2 answered CONTINUE")
  check(mt.getheader(conn, "X-Filterctl-Transaction", 0) == "1", "first completed message of the connection")
  check(mt.getheader(conn, "X-Filterctl-Recipients", 0) == "kept@example.net", "recipients of message 2")

  -- 3. MAIL directly after end of message, no abort; with MAIL macros.
  mt.macro(conn, SMFIC_MAIL, "{auth_authen}", "third-user", "{mail_addr}", "third@example.org")
  check(mt.mailfrom(conn, "<third@example.org>") == nil, "mailfrom 3")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "mail 3 answered CONTINUE")
  check(mt.rcptto(conn, "<other@example.net>") == nil, "rcptto 3")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "rcpt 3 answered CONTINUE")
  check(mt.header(conn, "Subject", "third") == nil, "header 3")
  check(mt.eoh(conn) == nil, "eoh 3")
  check(mt.bodystring(conn, "third\r\n") == nil, "body 3")
  check(mt.eom(conn) == nil, "eom 3")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "eom 3 answered CONTINUE")
  check(mt.getheader(conn, "X-Filterctl-Transaction", 0) == "2", "second completed message of the connection")
  check(mt.getheader(conn, "X-Filterctl-Recipients", 0) == "other@example.net", "recipients of message 3")

  -- 4. A refused MAIL followed by another MAIL without an abort, with MAIL macros.
  check(mt.mailfrom(conn, "<forged@example.org>") == nil, "mailfrom forged")
  check(mt.getreply(conn) == SMFIR_REPLYCODE, "forged sender answered REPLYCODE")
  mt.macro(conn, SMFIC_MAIL, "{auth_authen}", "fourth-user", "{mail_addr}", "fourth@example.org")
  check(mt.mailfrom(conn, "<fourth@example.org>") == nil, "mailfrom 4")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "mail 4 answered CONTINUE")
  check(mt.rcptto(conn, "<last@example.net>") == nil, "rcptto 4")
  check(mt.eom(conn) == nil, "eom 4")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "eom 4 answered CONTINUE")
  check(mt.getheader(conn, "X-Filterctl-Transaction", 0) == "3", "third completed message of the connection")
  mt.disconnect(conn)
  mt.echo("transactions: all checks passed")
end

local ok, err = pcall(main)
if not ok then
  io.stderr:write("FAILED: " .. tostring(err) .. "\n")
  os.exit(1)
end
