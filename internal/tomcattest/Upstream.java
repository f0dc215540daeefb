import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import org.apache.catalina.Context;
import org.apache.catalina.connector.Connector;
import org.apache.catalina.startup.Tomcat;

// A legacy Java application for the tests: servlets on /admin/* and
// /settings/*, a default servlet for every other path, each answering with
// its name, the path Tomcat resolved and the step-up identity it was told.
// Arguments: port, base directory, allowBackslash (true or false).
public class Upstream {
    static HttpServlet named(String name) {
        return new HttpServlet() {
            @Override
            protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                String info = req.getPathInfo() == null ? "" : req.getPathInfo();
                resp.setContentType("text/plain;charset=UTF-8");
                resp.getWriter().print("servlet=" + name + " path=" + req.getServletPath() + info
                        + " identity=" + req.getHeader("X-Stepup-Identity"));
            }
        };
    }

    public static void main(String[] args) throws Exception {
        Tomcat tomcat = new Tomcat();
        tomcat.setBaseDir(args[1]);
        tomcat.setPort(Integer.parseInt(args[0]));
        Connector connector = tomcat.getConnector();
        connector.setProperty("address", "127.0.0.1");
        connector.setAllowBackslash(Boolean.parseBoolean(args[2]));
        Context ctx = tomcat.addContext("", null);
        Tomcat.addServlet(ctx, "admin", named("admin")).addMapping("/admin/*");
        Tomcat.addServlet(ctx, "settings", named("settings")).addMapping("/settings/*");
        Tomcat.addServlet(ctx, "default", named("default")).addMapping("/");
        tomcat.start();
        System.out.println("tomcattest: listening on 127.0.0.1:" + args[0]);
        tomcat.getServer().await();
    }
}
