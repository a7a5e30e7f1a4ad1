-- wrk script: GET /posts/{slug} with post popularity following Zipf(s) over the slugs listed
-- (one per line, most popular first) in the file named by the SLUGS environment variable;
-- ZIPF_SEED picks the (reproducible) request sequence.
local s = tonumber(os.getenv("ZIPF_S") or "1.1")
local slugs = {}
local cdf = {}

function init(args)
  for line in io.lines(os.getenv("SLUGS")) do
    slugs[#slugs + 1] = line
  end
  local total = 0
  for rank = 1, #slugs do
    total = total + 1 / rank ^ s
    cdf[rank] = total
  end
  for rank = 1, #slugs do
    cdf[rank] = cdf[rank] / total
  end
  math.randomseed(tonumber(os.getenv("ZIPF_SEED") or "1"))
end

local function pick()
  local u = math.random()
  local lo, hi = 1, #cdf
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return slugs[lo]
end

function request()
  return wrk.format("GET", "/posts/" .. pick())
end
