"""The weather tools' logic: call NWS and Open-Meteo, validate inputs, shape answers an LLM can quote.

Kept apart from the MCP wiring (``mcp_servers.weather``) so each tool is a plain async method returning
a JSON-able dict. Every failure is a ``ToolError`` with a sentence that says what to do about it.
"""

import logging
from dataclasses import dataclass
from typing import Any

import httpx
from mcp.server.fastmcp.exceptions import ToolError

from mcp_servers.http_upstream import JSONUpstream, UpstreamError, UpstreamReply, new_client
from mcp_servers.weather_data import US_STATE_CODES_BY_NAME, US_STATES, us_aqi_category, weather_code_text

logger = logging.getLogger(__name__)

NWS_PUBLIC_BASE_URL = "https://api.weather.gov"
WORLD_FORECAST_DAILY = (
    "weather_code",
    "temperature_2m_max",
    "temperature_2m_min",
    "precipitation_sum",
    "precipitation_probability_max",
    "wind_speed_10m_max",
)
WORLD_FORECAST_CURRENT = ("temperature_2m", "relative_humidity_2m", "weather_code", "wind_speed_10m")
AIR_QUALITY_CURRENT = (
    "us_aqi",
    "european_aqi",
    "pm2_5",
    "pm10",
    "ozone",
    "nitrogen_dioxide",
    "sulphur_dioxide",
    "carbon_monoxide",
)
MAX_GEOCODE_RESULTS = 10
# Common ways to write a country that are not its ISO code or English name (qualifiers in geocode).
COUNTRY_ALIASES = {"uk": "gb", "britain": "gb", "usa": "us", "u.s.": "us", "u.s.a.": "us", "america": "us"}
MAX_FORECAST_DAYS = 16


@dataclass(frozen=True)
class WeatherEndpoints:
    """Resolved base URLs and client settings (see ``WeatherServerArgs`` for the defaults)."""

    nws: str
    forecast: str
    geocoding: str
    air_quality: str
    user_agent: str
    timeout_s: float
    retries: int = 1


def check_coordinates(latitude: float, longitude: float) -> None:
    """Refuse coordinates off the globe with a sentence the model can act on."""
    if not -90 <= latitude <= 90:
        raise ToolError(f"latitude must be between -90 and 90 degrees, got {latitude:g}.")
    if not -180 <= longitude <= 180:
        raise ToolError(f"longitude must be between -180 and 180 degrees, got {longitude:g}.")


def us_state_code(state: str) -> str:
    """The two-letter code NWS expects; a full state name gets an error that names its code."""
    value = state.strip()
    if value.upper() in US_STATES:
        return value.upper()
    hint = US_STATE_CODES_BY_NAME.get(value.lower())
    if hint:
        raise ToolError(f"state must be a two-letter code: use '{hint}' for {US_STATES[hint]}.")
    raise ToolError(
        f"'{state}' is not a US state or territory code; use two letters such as 'WA', 'CA' or 'NY'."
    )


def _coord(value: float) -> str:
    """NWS accepts at most 4 decimals (it redirects longer ones)."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _with_unit(value: Any, unit: str | None) -> str | None:
    if value is None:
        return None
    return f"{value} {unit}".strip() if unit else str(value)


def _notice(*replies: UpstreamReply) -> dict[str, str]:
    notices = list(dict.fromkeys(reply.notice for reply in replies if reply.notice))
    return {"notice": " ".join(notices)} if notices else {}


class WeatherService:
    """One per replica: the upstream APIs behind one shared HTTP client."""

    def __init__(self, endpoints: WeatherEndpoints, client: httpx.AsyncClient | None = None) -> None:
        self.client = client or new_client(timeout_s=endpoints.timeout_s, user_agent=endpoints.user_agent)
        retries = endpoints.retries
        self.nws_base_url = endpoints.nws.rstrip("/")
        self.nws = JSONUpstream(
            "the US National Weather Service API",
            endpoints.nws,
            self.client,
            retries=retries,
            headers={"Accept": "application/geo+json"},
        )
        self.forecast = JSONUpstream(
            "the Open-Meteo forecast API", endpoints.forecast, self.client, retries=retries
        )
        self.geocoding = JSONUpstream(
            "the Open-Meteo geocoding API", endpoints.geocoding, self.client, retries=retries
        )
        self.air_quality = JSONUpstream(
            "the Open-Meteo air quality API", endpoints.air_quality, self.client, retries=retries
        )

    async def aclose(self) -> None:
        """Close the shared HTTP client."""
        await self.client.aclose()

    # -- geocoding -------------------------------------------------------------------------------

    async def geocode(self, place: str, count: int = 1) -> dict[str, Any]:
        """Places matching ``place`` ("Seattle", "Paris, France", "Portland OR"), best match first."""
        place = " ".join(place.split())
        if len(place) < 2:
            raise ToolError("place must name a city or place, e.g. 'Seattle' or 'Paris, France'.")
        if not 1 <= count <= MAX_GEOCODE_RESULTS:
            raise ToolError(f"count must be between 1 and {MAX_GEOCODE_RESULTS}, got {count}.")
        replies: list[UpstreamReply] = []
        candidates: list[dict[str, Any]] = []
        for name, qualifiers in _name_splits(place):
            reply = await self.geocoding.get_json(
                "/v1/search",
                {"name": name, "count": 20 if qualifiers else count, "language": "en", "format": "json"},
            )
            replies.append(reply)
            results = (reply.data.get("results") or []) if isinstance(reply.data, dict) else []
            candidates = [_place(result) for result in results if isinstance(result, dict)]
            matches = [c for c in candidates if all(_qualifies(c, q) for q in qualifiers)]
            if matches:
                return {"query": place, "results": matches[:count], **_notice(*replies)}
        if candidates:
            found = "; ".join(c["label"] for c in candidates[:5])
            raise ToolError(f"No place matches '{place}'. Places with that name: {found}.")
        raise ToolError(
            f"No place named '{place}' was found. Check the spelling or try a larger nearby city."
        )

    # -- forecasts -------------------------------------------------------------------------------

    async def us_forecast(self, latitude: float, longitude: float) -> dict[str, Any]:
        """NWS forecast periods; outside NWS coverage the worldwide forecast, saying so."""
        check_coordinates(latitude, longitude)
        try:
            points = await self.nws.get_json(f"/points/{_coord(latitude)},{_coord(longitude)}")
        except UpstreamError as exc:
            if exc.status != 404:
                raise
            world = await self.world_forecast(latitude, longitude, days=7)
            note = (
                f"The US National Weather Service covers only the United States and its territories; "
                f"({latitude:g}, {longitude:g}) is outside it, so this is the worldwide Open-Meteo forecast."
            )
            return {"note": note, **world}
        props = _properties(points, "points")
        forecast_url = props.get("forecast")
        if not isinstance(forecast_url, str) or not forecast_url:
            raise UpstreamError(
                "The US National Weather Service API returned no forecast URL for this point."
            )
        forecast = await self.nws.get_json(self._nws_url(forecast_url))
        periods = _properties(forecast, "forecast").get("periods") or []
        location = props.get("relativeLocation", {}).get("properties", {})
        place = ", ".join(part for part in (location.get("city"), location.get("state")) if part)
        return {
            "source": "US National Weather Service",
            "location": place or None,
            "latitude": latitude,
            "longitude": longitude,
            "forecast_office": props.get("gridId"),
            "updated": _properties(forecast, "forecast").get("updateTime"),
            "periods": [_nws_period(period) for period in periods if isinstance(period, dict)],
            **_notice(points, forecast),
        }

    async def world_forecast(self, latitude: float, longitude: float, days: int = 7) -> dict[str, Any]:
        """Open-Meteo daily forecast for any coordinates."""
        check_coordinates(latitude, longitude)
        if not 1 <= days <= MAX_FORECAST_DAYS:
            raise ToolError(f"days must be between 1 and {MAX_FORECAST_DAYS}, got {days}.")
        reply = await self.forecast.get_json(
            "/v1/forecast",
            {
                "latitude": latitude,
                "longitude": longitude,
                "daily": ",".join(WORLD_FORECAST_DAILY),
                "current": ",".join(WORLD_FORECAST_CURRENT),
                "forecast_days": days,
                "timezone": "auto",
            },
        )
        data = _object(reply, "forecast")
        current, current_units = data.get("current") or {}, data.get("current_units") or {}
        return {
            "source": "Open-Meteo",
            "latitude": latitude,
            "longitude": longitude,
            "timezone": data.get("timezone"),
            "current": {
                "time": current.get("time"),
                "conditions": weather_code_text(current.get("weather_code")),
                "temperature": _with_unit(current.get("temperature_2m"), current_units.get("temperature_2m")),
                "humidity": _with_unit(
                    current.get("relative_humidity_2m"), current_units.get("relative_humidity_2m")
                ),
                "wind": _with_unit(current.get("wind_speed_10m"), current_units.get("wind_speed_10m")),
            }
            if current
            else None,
            "daily": _daily_rows(data.get("daily") or {}, data.get("daily_units") or {}),
            **_notice(reply),
        }

    # -- alerts and air quality ------------------------------------------------------------------

    async def alerts(self, state: str) -> dict[str, Any]:
        """Active NWS alerts for a US state or territory code; none found is said in ``message``."""
        code = us_state_code(state)
        reply = await self.nws.get_json("/alerts/active", {"area": code})
        features = _object(reply, "alerts").get("features") or []
        alerts = [
            _alert(feature.get("properties") or {}) for feature in features if isinstance(feature, dict)
        ]
        result: dict[str, Any] = {
            "source": "US National Weather Service",
            "state": code,
            "state_name": US_STATES[code],
            "count": len(alerts),
            "alerts": alerts,
        }
        if not alerts:
            result["message"] = f"No active weather alerts for {US_STATES[code]} ({code})."
        return {**result, **_notice(reply)}

    async def air_quality_now(self, latitude: float, longitude: float) -> dict[str, Any]:
        """Open-Meteo's current air quality: both AQIs, the US AQI's category and the pollutants."""
        check_coordinates(latitude, longitude)
        reply = await self.air_quality.get_json(
            "/v1/air-quality",
            {
                "latitude": latitude,
                "longitude": longitude,
                "current": ",".join(AIR_QUALITY_CURRENT),
                "timezone": "auto",
            },
        )
        data = _object(reply, "air quality")
        current, units = data.get("current") or {}, data.get("current_units") or {}
        if not current:
            raise UpstreamError("The Open-Meteo air quality API returned no current values for this point.")
        pollutants = {
            name: _with_unit(current.get(name), units.get(name))
            for name in AIR_QUALITY_CURRENT
            if name not in ("us_aqi", "european_aqi") and current.get(name) is not None
        }
        return {
            "source": "Open-Meteo Air Quality",
            "latitude": latitude,
            "longitude": longitude,
            "time": current.get("time"),
            "us_aqi": current.get("us_aqi"),
            "us_aqi_category": us_aqi_category(current.get("us_aqi")),
            "european_aqi": current.get("european_aqi"),
            "pollutants": pollutants,
            **_notice(reply),
        }

    def _nws_url(self, url: str) -> str:
        """NWS answers with absolute api.weather.gov URLs; follow them on the configured base instead."""
        if url.startswith(NWS_PUBLIC_BASE_URL + "/") and self.nws_base_url != NWS_PUBLIC_BASE_URL:
            return self.nws_base_url + url[len(NWS_PUBLIC_BASE_URL) :]
        return url


# -- shaping helpers -------------------------------------------------------------------------------


def _name_splits(place: str) -> list[tuple[str, list[str]]]:
    """Searches to try: "Paris, France" → Paris in France; "Portland OR" → Portland, then qualified."""
    if "," in place:
        name, *rest = (part.strip() for part in place.split(","))
        return [(name, [q.lower() for q in rest if q])]
    words = place.split(" ")
    splits: list[tuple[str, list[str]]] = [(place, [])]
    for cut in range(len(words) - 1, max(len(words) - 3, 0), -1):
        splits.append((" ".join(words[:cut]), [" ".join(words[cut:]).lower()]))
    return splits


def _place(result: dict[str, Any]) -> dict[str, Any]:
    country_code = result.get("country_code")
    admin1 = result.get("admin1")
    state = US_STATE_CODES_BY_NAME.get((admin1 or "").lower()) if country_code == "US" else None
    label = ", ".join(part for part in (result.get("name"), admin1, result.get("country")) if part)
    place = {
        "name": result.get("name"),
        "label": label,
        "latitude": result.get("latitude"),
        "longitude": result.get("longitude"),
        "country": result.get("country"),
        "country_code": country_code,
        "admin1": admin1,
        "state": state,
        "timezone": result.get("timezone"),
        "population": result.get("population"),
        "elevation_m": result.get("elevation"),
    }
    return {key: value for key, value in place.items() if value is not None}


def _qualifies(place: dict[str, Any], qualifier: str) -> bool:
    qualifier = COUNTRY_ALIASES.get(qualifier, qualifier)
    fields = (place.get("admin1"), place.get("country"), place.get("country_code"), place.get("state"))
    return any(isinstance(value, str) and value.lower() == qualifier for value in fields)


def _object(reply: UpstreamReply, what: str) -> dict[str, Any]:
    if not isinstance(reply.data, dict):
        raise UpstreamError(f"The {what} answer is not a JSON object.")
    return reply.data


def _properties(reply: UpstreamReply, what: str) -> dict[str, Any]:
    props = _object(reply, f"US National Weather Service {what}").get("properties")
    if not isinstance(props, dict):
        raise UpstreamError(f"The US National Weather Service {what} answer has no 'properties'.")
    return props


def _nws_period(period: dict[str, Any]) -> dict[str, Any]:
    wind = " ".join(part for part in (period.get("windSpeed"), period.get("windDirection")) if part)
    precipitation = (period.get("probabilityOfPrecipitation") or {}).get("value")
    temperature = period.get("temperature")
    return {
        "name": period.get("name"),
        "start": period.get("startTime"),
        "temperature": f"{temperature} °{period.get('temperatureUnit', 'F')}"
        if temperature is not None
        else None,
        "wind": wind or None,
        "chance_of_precipitation": f"{precipitation}%" if precipitation is not None else None,
        "short_forecast": period.get("shortForecast"),
        "detailed_forecast": period.get("detailedForecast"),
    }


def _daily_rows(daily: dict[str, list[Any]], units: dict[str, str]) -> list[dict[str, Any]]:
    def column(name: str) -> list[Any]:
        values = daily.get(name)
        return values if isinstance(values, list) else []

    def at(name: str, index: int) -> Any:
        values = column(name)
        return values[index] if index < len(values) else None

    rows = []
    for index, date in enumerate(column("time")):
        conditions = weather_code_text(at("weather_code", index))
        high = _with_unit(at("temperature_2m_max", index), units.get("temperature_2m_max"))
        low = _with_unit(at("temperature_2m_min", index), units.get("temperature_2m_min"))
        precipitation = _with_unit(at("precipitation_sum", index), units.get("precipitation_sum"))
        chance = _with_unit(
            at("precipitation_probability_max", index), units.get("precipitation_probability_max")
        )
        wind = _with_unit(at("wind_speed_10m_max", index), units.get("wind_speed_10m_max"))
        summary = f"{date}: {conditions}, high {high}, low {low}, precipitation {precipitation}"
        rows.append(
            {
                "date": date,
                "conditions": conditions,
                "high": high,
                "low": low,
                "precipitation": precipitation,
                "chance_of_precipitation": chance,
                "max_wind": wind,
                "summary": summary,
            }
        )
    return rows


def _alert(props: dict[str, Any]) -> dict[str, Any]:
    keys = ("event", "headline", "severity", "urgency", "certainty", "areaDesc", "effective", "expires")
    alert = {key if key != "areaDesc" else "area": props.get(key) for key in keys}
    alert["sender"] = props.get("senderName")
    alert["description"] = props.get("description")
    alert["instruction"] = props.get("instruction")
    return {key: value for key, value in alert.items() if value is not None}
