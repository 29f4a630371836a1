-- Option negotiation against the test policy milter (test/fixtures/policy-milter.ts).
-- Run by test/e2e/miltertest.test.ts; by hand:
--   FILTERCTL_MILTER_PORT=PORT miltertest -s test/miltertest/negotiation.lua
local port = os.getenv("FILTERCTL_MILTER_PORT")
if port == nil or port == "" then error("FILTERCTL_MILTER_PORT is not set") end
local function check(condition, what)
  if not condition then error("check failed: " .. what, 2) end
end

-- Errors raised inside miltertest's own functions are not always printed: report them here.
local function main()
  local function connect()
    local conn = mt.connect("inet:" .. port .. "@127.0.0.1", 20, 0.1)
    check(conn ~= nil, "connect to the milter on port " .. port)
    return conn
  end

  -- 1. The MTA offers everything (version 6, all actions, all steps): the filter asks for the
  --    modifications it uses and macro lists, skips no stage and waives no reply.
  local conn = connect()
  -- miltertest's argument order is (conn, version, protocol steps, actions).
  check(mt.negotiate(conn, 6, 0x1FFFFF, 0x1FF) == nil, "negotiate with the full offer")
  check(mt.test_action(conn, SMFIF_ADDHDRS), "ADDHDRS requested")
  check(mt.test_action(conn, SMFIF_CHGHDRS), "CHGHDRS requested")
  check(mt.test_action(conn, SMFIF_QUARANTINE), "QUARANTINE requested")
  check(mt.test_action(conn, SMFIF_SETSYMLIST), "SETSYMLIST requested (macro lists)")
  check(not mt.test_action(conn, SMFIF_CHGBODY), "CHGBODY not requested")
  check(not mt.test_action(conn, SMFIF_ADDRCPT), "ADDRCPT not requested")
  check(not mt.test_action(conn, SMFIF_DELRCPT), "DELRCPT not requested")
  check(not mt.test_action(conn, SMFIF_CHGFROM), "CHGFROM not requested")
  check(not mt.test_action(conn, SMFIF_ADDRCPT_PAR), "ADDRCPT_PAR not requested")
  -- The fixture handles every stage and may refuse at any of them.
  for name, flag in pairs({
    SMFIP_NOCONNECT = SMFIP_NOCONNECT, SMFIP_NOHELO = SMFIP_NOHELO, SMFIP_NOMAIL = SMFIP_NOMAIL,
    SMFIP_NORCPT = SMFIP_NORCPT, SMFIP_NOBODY = SMFIP_NOBODY, SMFIP_NOHDRS = SMFIP_NOHDRS,
    SMFIP_NOEOH = SMFIP_NOEOH, SMFIP_NOUNKNOWN = SMFIP_NOUNKNOWN, SMFIP_NODATA = SMFIP_NODATA,
    SMFIP_NR_HDR = SMFIP_NR_HDR, SMFIP_NR_CONN = SMFIP_NR_CONN, SMFIP_NR_HELO = SMFIP_NR_HELO,
    SMFIP_NR_MAIL = SMFIP_NR_MAIL, SMFIP_NR_RCPT = SMFIP_NR_RCPT, SMFIP_NR_DATA = SMFIP_NR_DATA,
    SMFIP_NR_UNKN = SMFIP_NR_UNKN, SMFIP_NR_EOH = SMFIP_NR_EOH, SMFIP_NR_BODY = SMFIP_NR_BODY,
    SMFIP_RCPT_REJ = SMFIP_RCPT_REJ, SMFIP_HDR_LEADSPC = SMFIP_HDR_LEADSPC,
  }) do
    check(not mt.test_option(conn, flag), name .. " not requested")
  end
  -- A body handler that decides gets to answer SKIP.
  check(mt.test_option(conn, SMFIP_SKIP), "SKIP requested")
  check(mt.conninfo(conn, "client.example", "192.0.2.1") == nil, "conninfo")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "connect answered CONTINUE")
  mt.disconnect(conn)

  -- 2. A restricted offer (an old MTA): only ADDHDRS, and no SKIP. The filter must never ask
  --    for more than offered, and must not send modifications it did not get.
  conn = connect()
  check(mt.negotiate(conn, 6, 0x1FFFFF - SMFIP_SKIP, SMFIF_ADDHDRS) == nil, "negotiate with a restricted offer")
  check(mt.test_action(conn, SMFIF_ADDHDRS), "ADDHDRS requested from the restricted offer")
  check(not mt.test_action(conn, SMFIF_CHGHDRS), "CHGHDRS not requested (not offered)")
  check(not mt.test_action(conn, SMFIF_QUARANTINE), "QUARANTINE not requested (not offered)")
  check(not mt.test_action(conn, SMFIF_SETSYMLIST), "SETSYMLIST not requested (not offered)")
  check(not mt.test_option(conn, SMFIP_SKIP), "SKIP not requested (not offered)")
  check(mt.conninfo(conn, "client.example", "192.0.2.1") == nil, "conninfo (restricted)")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "connect answered CONTINUE (restricted)")
  check(mt.mailfrom(conn, "<sender@example.org>") == nil, "mailfrom (restricted)")
  check(mt.rcptto(conn, "<someone@example.net>") == nil, "rcptto (restricted)")
  check(mt.header(conn, "Subject", "[modify] [quarantine] restricted") == nil, "header (restricted)")
  check(mt.eoh(conn) == nil, "eoh (restricted)")
  check(mt.bodystring(conn, "body\r\n") == nil, "body (restricted)")
  check(mt.eom(conn) == nil, "eom (restricted)")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "eom answered CONTINUE (restricted)")
  check(mt.eom_check(conn, MT_HDRADD, "X-Filterctl-Test", "passed"), "header added (ADDHDRS offered)")
  check(mt.eom_check(conn, MT_HDRINSERT, "X-Filterctl-Top", "first", 0), "header inserted (ADDHDRS offered)")
  check(not mt.eom_check(conn, MT_HDRCHANGE), "no header change (CHGHDRS not offered)")
  check(not mt.eom_check(conn, MT_QUARANTINE), "no quarantine (QUARANTINE not offered)")
  mt.disconnect(conn)
  mt.echo("negotiation: all checks passed")
end

local ok, err = pcall(main)
if not ok then
  io.stderr:write("FAILED: " .. tostring(err) .. "\n")
  os.exit(1)
end
