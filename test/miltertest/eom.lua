-- End-of-message modifications: add, insert at index 0, change, quarantine; and none of the
-- optional ones for the next message on the same connection.
--   FILTERCTL_MILTER_PORT=PORT miltertest -s test/miltertest/eom.lua
local port = os.getenv("FILTERCTL_MILTER_PORT")
if port == nil or port == "" then error("FILTERCTL_MILTER_PORT is not set") end
local function check(condition, what)
  if not condition then error("check failed: " .. what, 2) end
end

-- Errors raised inside miltertest's own functions are not always printed: report them here.
local function main()
  local conn = mt.connect("inet:" .. port .. "@127.0.0.1", 20, 0.1)
  check(conn ~= nil, "connect to the milter on port " .. port)
  check(mt.conninfo(conn, "client.example", "192.0.2.40") == nil, "conninfo")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "connect answered CONTINUE")

  local subject = "[modify] [quarantine] please filter"
  check(mt.mailfrom(conn, "<sender@example.org>") == nil, "mailfrom")
  check(mt.rcptto(conn, "<rcpt@example.net>") == nil, "rcptto")
  check(mt.header(conn, "From", "sender@example.org") == nil, "header From")
  check(mt.header(conn, "Subject", subject) == nil, "header Subject")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "header answered CONTINUE")
  check(mt.eoh(conn) == nil, "eoh")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "eoh answered CONTINUE")
  check(mt.bodystring(conn, "first line\r\nsecond line\r\n") == nil, "body")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "body answered CONTINUE")
  check(mt.eom(conn) == nil, "eom")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "eom answered CONTINUE")
  check(mt.eom_check(conn, MT_HDRADD, "X-Filterctl-Test", "passed"), "MT_HDRADD X-Filterctl-Test: passed")
  check(mt.eom_check(conn, MT_HDRINSERT, "X-Filterctl-Top", "first", 0), "MT_HDRINSERT X-Filterctl-Top at index 0")
  check(mt.eom_check(conn, MT_HDRCHANGE, "Subject", "[filtered] " .. subject), "MT_HDRCHANGE Subject")
  check(mt.eom_check(conn, MT_QUARANTINE, "held by the filterctl test policy"), "MT_QUARANTINE with the reason")
  check(not mt.eom_check(conn, MT_BODYCHANGE), "body not replaced")
  check(not mt.eom_check(conn, MT_HDRDELETE), "no header deleted")

  -- The next message on the same connection asks for nothing optional.
  check(mt.mailfrom(conn, "<sender@example.org>") == nil, "mailfrom 2")
  check(mt.rcptto(conn, "<rcpt@example.net>") == nil, "rcptto 2")
  check(mt.header(conn, "Subject", "plain") == nil, "header 2")
  check(mt.eoh(conn) == nil, "eoh 2")
  check(mt.bodystring(conn, "plain\r\n") == nil, "body 2")
  check(mt.eom(conn) == nil, "eom 2")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "eom 2 answered CONTINUE")
  check(mt.eom_check(conn, MT_HDRADD, "X-Filterctl-Test", "passed"), "MT_HDRADD on message 2")
  check(not mt.eom_check(conn, MT_HDRINSERT), "no insert on message 2")
  check(not mt.eom_check(conn, MT_HDRCHANGE), "no change on message 2")
  check(not mt.eom_check(conn, MT_QUARANTINE), "no quarantine on message 2")
  mt.disconnect(conn)
  mt.echo("eom: all checks passed")
end

local ok, err = pcall(main)
if not ok then
  io.stderr:write("FAILED: " .. tostring(err) .. "\n")
  os.exit(1)
end
