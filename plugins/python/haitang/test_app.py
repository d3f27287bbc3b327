"""Haitang's night talks, run natively against the sample city's directory."""

import os
import unittest

import civic_testing
from civic_testing import case, context
from wit_world.imports import types

import app

HERE = os.path.dirname(os.path.abspath(__file__))
DIRECTORY = os.environ.get("CIVIC_DIRECTORY", os.path.join(HERE, "directory.json"))


class NightTalks(unittest.TestCase):
    def setUp(self):
        civic_testing.use_directory(civic_testing.load_units(DIRECTORY), "haitang")

    def test_a_village_suggestion_goes_to_the_village(self):
        d = app.Hooks().routing(case("haitang", "suggestion", community="haitang/longjiang"), context())
        self.assertEqual(d.lead, "haitang/longjiang")
        self.assertEqual(d.reasons, ["route.haitang.night-talks"])

    def test_an_urgent_one_keeps_the_urgent_deadlines(self):
        c = case("haitang", "suggestion", community="haitang/longjiang", urgent=True)
        d = app.Hooks().routing(c, context())
        self.assertEqual(d.deadlines.sign_off, types.Span_Minutes(30))
        self.assertIn("deadline.urgent", d.reasons)

    def test_anything_else_is_left_to_the_city_default(self):
        hooks = app.Hooks()
        self.assertIsNone(hooks.routing(case("haitang", "noise", community="haitang/longjiang"), context()))
        self.assertIsNone(hooks.routing(case("haitang", "suggestion"), context()))
        returned = case("haitang", "suggestion", community="haitang/longjiang")
        returned.returned_by = ["haitang/longjiang"]
        self.assertIsNone(hooks.routing(returned, context()))

    def test_another_districts_village_is_not_visible(self):
        c = case("jiyang", "suggestion", community="haitang/longjiang")
        civic_testing.use_directory(civic_testing.load_units(DIRECTORY), "jiyang")
        self.assertIsNone(app.Hooks().routing(c, context()))


if __name__ == "__main__":
    unittest.main()
