-- bench/cold.lua: wrk's script for bench/run's cold token cache (issue 17).
-- Every request is another user with a fresh valid token, taken in turn
-- from the file bench/flood -mint wrote ("user token" lines). With the
-- argument "mixed", every other request carries a distinct invalid token
-- instead (the signature's end replaced by a counter).
--   wrk -s bench/cold.lua URL -- tokens.txt [valid|mixed]
local users, tokens, n = {}, {}, 0
local mode = "valid"
local i = 0

function init(args)
	for line in io.lines(args[1]) do
		local u, t = line:match("^(%S+) (%S+)$")
		if u then
			n = n + 1
			users[n], tokens[n] = u, t
		end
	end
	mode = args[2] or "valid"
end

function request()
	i = i + 1
	local k = (i - 1) % n + 1
	local tok = tokens[k]
	if mode == "mixed" and i % 2 == 0 then
		tok = tok:sub(1, -9) .. string.format("%08d", i % 100000000)
	end
	return wrk.format("GET", "/settings", {
		["X-User"] = users[k],
		["X-Phone"] = "+819012345678",
		["Cookie"] = "stepup=" .. tok,
	})
end
