-- Several recipients in one transaction, some refused: only those get SMFIR_REPLYCODE, the
-- others CONTINUE, and the message goes on. Then a sender refused at MAIL.
--   FILTERCTL_MILTER_PORT=PORT miltertest -s test/miltertest/recipients.lua
local port = os.getenv("FILTERCTL_MILTER_PORT")
if port == nil or port == "" then error("FILTERCTL_MILTER_PORT is not set") end
local function check(condition, what)
  if not condition then error("check failed: " .. what, 2) end
end

-- Errors raised inside miltertest's own functions are not always printed: report them here.
local function main()
  local conn = mt.connect("inet:" .. port .. "@127.0.0.1", 20, 0.1)
  check(conn ~= nil, "connect to the milter on port " .. port)
  check(mt.conninfo(conn, "client.example", "192.0.2.20") == nil, "conninfo")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "connect answered CONTINUE")
  check(mt.helo(conn, "client.example") == nil, "helo")

  check(mt.mailfrom(conn, "<sender@example.org>") == nil, "mailfrom")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "mail answered CONTINUE")
  check(mt.rcptto(conn, "<full-box@example.net>") == nil, "rcptto full-box")
  check(mt.getreply(conn) == SMFIR_REPLYCODE, "over-quota recipient answered REPLYCODE")
  check(mt.rcptto(conn, "<good@example.net>") == nil, "rcptto good")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "good recipient answered CONTINUE")
  check(mt.rcptto(conn, "<bad@example.net>") == nil, "rcptto bad")
  check(mt.getreply(conn) == SMFIR_REPLYCODE, "bad recipient answered REPLYCODE")
  check(mt.rcptto(conn, "<also-good@example.net>") == nil, "rcptto also-good")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "second good recipient answered CONTINUE")
  check(mt.data(conn) == nil, "data")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "data answered CONTINUE")
  check(mt.header(conn, "Subject", "several recipients") == nil, "header")
  check(mt.eoh(conn) == nil, "eoh")
  check(mt.bodystring(conn, "hello\r\n") == nil, "body")
  check(mt.eom(conn) == nil, "eom")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "eom answered CONTINUE")
  local accepted = mt.getheader(conn, "X-Filterctl-Recipients", 0)
  check(accepted == "good@example.net, also-good@example.net",
    "X-Filterctl-Recipients lists the accepted recipients only, got " .. tostring(accepted))

  -- A forged sender is refused at MAIL; the connection stays usable for the next one.
  check(mt.mailfrom(conn, "<forged@example.org>") == nil, "mailfrom forged")
  check(mt.getreply(conn) == SMFIR_REPLYCODE, "forged sender answered REPLYCODE")
  check(mt.abort(conn) == nil, "abort after the refused MAIL")
  check(mt.mailfrom(conn, "<real@example.org>") == nil, "mailfrom real")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "next sender answered CONTINUE")
  check(mt.rcptto(conn, "<full@example.net>") == nil, "rcptto full")
  check(mt.getreply(conn) == SMFIR_REPLYCODE, "over-quota recipient answered REPLYCODE")
  mt.disconnect(conn)
  mt.echo("recipients: all checks passed")
end

local ok, err = pcall(main)
if not ok then
  io.stderr:write("FAILED: " .. tostring(err) .. "\n")
  os.exit(1)
end
