/* SPDX-License-Identifier: ISC */
/*
 * Test plugin, in C++: ordinary C++ code runs unchanged in a sandboxed
 * helper.  init and then every call use, and check, what such code leans
 * on:
 *
 *	1  a static constructor: a global object built at dlopen, and a
 *	   function-local static built at its first use
 *	2  exceptions thrown and caught (std::runtime_error, and
 *	   std::out_of_range from std::vector::at)
 *	3  thread_local state with a constructor (and a destructor to
 *	   register), first touched in a call, counting calls like a global
 *	4  std::string, std::vector and std::unordered_map (operator new,
 *	   malloc)
 *	5  <cmath>: sqrt, pow, exp, log, lround, isnan
 *	6  snprintf formatting into a buffer, doubles included
 *	7  std::ostringstream (iostreams and the locale)
 *	8  clocks: clock_gettime (monotonic and realtime), std::chrono
 *	9  randomness: getrandom
 *
 * A check that fails makes init fail with "cxx: check N (WHAT) failed:
 * ...", or makes a call answer 1000 + N, which route-host reports as a
 * bad_decision ("plugin returned 1003 for 2 consumers"), and says which
 * on standard error.  An exception escaping the checks answers 1099.
 *
 * The decision: the consumer whose id is the text field "target" (looked
 * up in an unordered_map of the consumers' ids), none when no consumer has
 * that id; else, for a field "x" (an integer, a float, or text parsed by
 * std::stod), consumer (floor(sqrt(x)) + offset) mod n, none when x is
 * negative or text that is not a number (std::stod throws); else none.
 *
 * Option offset=N (default 0), parsed by std::stoul: a value that is not
 * a number fails init with "cxx: option offset=...: not a number", the
 * message of an exception caught in init.  Any other option fails init.
 */

#include <sys/random.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iomanip>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include <route-host/plugin.h>

namespace {

/* What init parsed. */
struct cxx_state {
	unsigned long	offset = 0;
};

/* Built by a static constructor when the plugin is loaded. */
struct cxx_table {
	std::vector<std::string>	words;
	double				root2;
	bool				built;

	cxx_table() : words{ "alpha", "beta", "gamma" },
	    root2(std::sqrt(2.0)), built(true) {}
};

cxx_table	table;

/* Per-thread state, built at its first use. */
struct cxx_tls {
	std::string	tag;
	unsigned long	calls;

	cxx_tls() : tag("tls-ready"), calls(0) {}
};

thread_local cxx_tls	tls;
unsigned long		calls;		/* the same count, global */
struct timespec		last_mono;	/* the monotonic clock, last read */

/* A failed check: which one, and why. */
struct cxx_failure {
	int		check;
	std::string	why;
};

const char *const	cxx_names[] = {
	"", "static constructor", "exceptions", "thread_local",
	"std::string, std::vector, std::unordered_map", "<cmath>",
	"snprintf", "std::ostringstream", "clocks", "getrandom",
};

/* Fail check n with a reason; no return. */
[[noreturn]] void
cxx_fail(int n, const std::string &why)
{
	throw cxx_failure{ n, why };
}

/* A function-local static, built at the first call of this function. */
const std::unordered_map<std::string, int> &
cxx_lengths()
{
	static const std::unordered_map<std::string, int>	m = {
		{ "alpha", 5 }, { "beta", 4 }, { "gamma", 5 },
	};

	return m;
}

/* Check 1: the static constructor ran and a local static is built. */
void
cxx_check_static()
{
	if (!table.built || table.words.size() != 3)
		cxx_fail(1, "the global object was not constructed");
	for (const std::string &w : table.words)
		if (cxx_lengths().at(w) != (int)w.size())
			cxx_fail(1, "the local static table is wrong");
}

/* Check 2: exceptions are thrown, caught and carry their message. */
void
cxx_check_exceptions(unsigned long n)
{
	std::vector<int>	v{ 1, 2, 3 };
	std::string		want = "probe " + std::to_string(n);
	bool			caught = false;

	try {
		throw std::runtime_error(want);
	} catch (const std::exception &e) {
		if (want != e.what())
			cxx_fail(2, std::string("caught '") + e.what() +
			    "', thrown '" + want + "'");
		caught = true;
	}
	if (!caught)
		cxx_fail(2, "std::runtime_error not caught");
	caught = false;
	try {
		(void)v.at(v.size() + n);
	} catch (const std::out_of_range &) {
		caught = true;
	}
	if (!caught)
		cxx_fail(2, "std::vector::at did not throw std::out_of_range");
}

/* Check 3: thread_local state is built once and kept between calls. */
void
cxx_check_tls()
{
	if (tls.tag != "tls-ready")
		cxx_fail(3, "the thread_local object was not constructed");
	if (++tls.calls != ++calls)
		cxx_fail(3, "thread_local count " + std::to_string(tls.calls) +
		    ", global count " + std::to_string(calls));
}

/* Check 4: strings and containers that allocate. */
void
cxx_check_containers(unsigned long n)
{
	std::unordered_map<std::string, std::vector<std::string>>	m;
	std::string						s;
	size_t							total = 0;

	for (unsigned long i = 0; i < 200; i++) {
		/* Long enough to be out of the small-string buffer. */
		std::string	key = "key-" + std::to_string(i % 17) +
				    std::string(40, 'x');

		m[key].push_back(std::to_string(i + n));
	}
	for (const auto &kv : m)
		total += kv.second.size();
	for (int i = 0; i < 100; i++)
		s += table.words[(size_t)i % table.words.size()];
	if (m.size() != 17 || total != 200 || s.size() != 467)
		cxx_fail(4, "sizes " + std::to_string(m.size()) + ", " +
		    std::to_string(total) + ", " + std::to_string(s.size()));
}

/* Check 5: the maths library. */
void
cxx_check_math()
{
	if (std::pow(2.0, 10.0) != 1024.0 ||
	    std::fabs(std::log(std::exp(3.0)) - 3.0) > 1e-12 ||
	    std::lround(std::sqrt(1764.0)) != 42 ||
	    std::fabs(table.root2 * table.root2 - 2.0) > 1e-12 ||
	    !std::isnan(std::sqrt(-1.0)))
		cxx_fail(5, "a result is wrong");
}

/* Check 6: snprintf into a buffer. */
void
cxx_check_snprintf()
{
	char	buf[64];
	int	len;

	len = std::snprintf(buf, sizeof buf, "%s:%.3f:%05d:%x:%e", "cxx",
	    table.root2, 42, 255U, 1234.5);
	if (len < 0 || std::strcmp(buf, "cxx:1.414:00042:ff:1.234500e+03") !=
	    0)
		cxx_fail(6, std::string("got '") + buf + "'");
}

/* Check 7: iostream formatting into a string. */
void
cxx_check_ostringstream()
{
	std::ostringstream	os;

	os << "cxx:" << std::fixed << std::setprecision(3) << table.root2 <<
	    ':' << std::setw(5) << std::setfill('0') << 42 << ':' <<
	    std::hex << 255;
	if (os.str() != "cxx:1.414:00042:ff")
		cxx_fail(7, "got '" + os.str() + "'");
}

/* Check 8: the clocks work and the monotonic one never goes back. */
void
cxx_check_clocks()
{
	struct timespec	mono, real;
	auto		t0 = std::chrono::steady_clock::now();

	if (clock_gettime(CLOCK_MONOTONIC, &mono) != 0 ||
	    clock_gettime(CLOCK_REALTIME, &real) != 0)
		cxx_fail(8, std::string("clock_gettime: ") +
		    std::strerror(errno));
	if (mono.tv_sec < last_mono.tv_sec || (mono.tv_sec ==
	    last_mono.tv_sec && mono.tv_nsec < last_mono.tv_nsec))
		cxx_fail(8, "CLOCK_MONOTONIC went back");
	last_mono = mono;
	if (real.tv_sec < 1577836800)	/* 2020-01-01 */
		cxx_fail(8, "CLOCK_REALTIME is " + std::to_string(real.tv_sec));
	if (std::chrono::steady_clock::now() < t0 ||
	    std::chrono::system_clock::now().time_since_epoch() <
	    std::chrono::hours(24 * 365 * 50))
		cxx_fail(8, "std::chrono clocks are wrong");
}

/* Check 9: the kernel's randomness. */
void
cxx_check_random()
{
	unsigned char	buf[32];
	ssize_t		n;

	std::memset(buf, 0, sizeof buf);
	n = getrandom(buf, sizeof buf, 0);
	if (n != (ssize_t)sizeof buf)
		cxx_fail(9, "getrandom returned " + std::to_string(n) + ": " +
		    std::strerror(errno));
	for (unsigned char b : buf)
		if (b != 0)
			return;
	cxx_fail(9, "getrandom gave 32 zero bytes");
}

/* Every check; throws a cxx_failure. */
void
cxx_checks(unsigned long n)
{
	cxx_check_static();
	cxx_check_exceptions(n);
	cxx_check_tls();
	cxx_check_containers(n);
	cxx_check_math();
	cxx_check_snprintf();
	cxx_check_ostringstream();
	cxx_check_clocks();
	cxx_check_random();
}

/* The value of field x as a number; throws when it is text and no number. */
bool
cxx_number(const struct route_value *v, double *x)
{
	size_t	used = 0;

	switch (v->type) {
	case ROUTE_INTEGER:
		*x = (double)v->integer;
		return true;
	case ROUTE_FLOAT:
		*x = v->real;
		return true;
	case ROUTE_TEXT:
		*x = std::stod(std::string(v->text, v->len), &used);
		return used == v->len;
	default:
		return false;
	}
}

/* The decision, as the header says. */
int
cxx_decide(const cxx_state *s, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	const struct route_value		*v;
	std::unordered_map<std::string, int>	 ids;
	double					 x;

	if ((v = route_message_get(msg, "target")) != nullptr &&
	    v->type == ROUTE_TEXT) {
		for (size_t i = 0; i < n; i++)
			ids.emplace(consumers[i].id, (int)i);
		auto	it = ids.find(std::string(v->text, v->len));

		return it == ids.end() ? ROUTE_NONE : it->second;
	}
	if ((v = route_message_get(msg, "x")) == nullptr || n == 0)
		return ROUTE_NONE;
	try {
		if (!cxx_number(v, &x))
			return ROUTE_NONE;
	} catch (const std::invalid_argument &) {
		return ROUTE_NONE;	/* text that is not a number */
	} catch (const std::out_of_range &) {
		return ROUTE_NONE;
	}
	if (!(x >= 0) || std::isinf(x))
		return ROUTE_NONE;
	return (int)(((unsigned long)std::floor(std::sqrt(x)) + s->offset) %
	    n);
}

/* Run the checks, then decide. */
int
cxx_route(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	const cxx_state	*s = static_cast<const cxx_state *>(state);

	try {
		cxx_checks(calls + 1);
		return cxx_decide(s, msg, consumers, n);
	} catch (const cxx_failure &f) {
		std::fprintf(stderr, "cxx: check %d (%s) failed: %s\n",
		    f.check, cxx_names[f.check], f.why.c_str());
		return 1000 + f.check;
	} catch (const std::exception &e) {
		std::fprintf(stderr, "cxx: unexpected exception: %s\n",
		    e.what());
	} catch (...) {
		std::fprintf(stderr, "cxx: unexpected exception\n");
	}
	return 1099;
}

/*
 * Parse the options and run every check but thread_local's: tls is first
 * touched in a call, under the running helper's tighter filter.
 */
int
cxx_init(void **state, const struct route_option *opts, size_t nopts,
    char *err, size_t errlen)
{
	cxx_state	*s = nullptr;

	try {
		s = new cxx_state;
		for (size_t i = 0; i < nopts; i++) {
			std::string	key = opts[i].key;
			std::string	value = opts[i].value;
			size_t		used = 0;

			if (key != "offset")
				throw std::invalid_argument("unknown option " +
				    key + " (the only option is offset=N)");
			try {
				s->offset = std::stoul(value, &used);
			} catch (const std::logic_error &) {
				used = 0;
			}
			if (used == 0 || used != value.size())
				throw std::invalid_argument("option offset=" +
				    value + ": not a number");
		}
		cxx_check_static();
		cxx_check_exceptions(0);
		cxx_check_containers(0);
		cxx_check_math();
		cxx_check_snprintf();
		cxx_check_ostringstream();
		cxx_check_clocks();
		cxx_check_random();
		*state = s;
		return 0;
	} catch (const cxx_failure &f) {
		std::snprintf(err, errlen, "cxx: check %d (%s) failed: %s",
		    f.check, cxx_names[f.check], f.why.c_str());
	} catch (const std::exception &e) {
		std::snprintf(err, errlen, "cxx: %s", e.what());
	}
	delete s;
	return -1;
}

/* Free what init allocated. */
void
cxx_fini(void *state)
{
	delete static_cast<cxx_state *>(state);
}

} /* namespace */

ROUTE_PLUGIN_STATEFUL("cxx", cxx_route, cxx_init, cxx_fini);
