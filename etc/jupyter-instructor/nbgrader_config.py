# nbgrader's course folder for make instructor: fcconv-course/ in the course folder, where the
# instructor's guide ("With nbgrader, as it is") builds the assignment from solutions/.
import os

c.CourseDirectory.root = os.path.join(os.getcwd(), "fcconv-course")  # noqa: F821
